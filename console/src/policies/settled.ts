import { useEffect, useState } from 'preact/hooks';

/** Waits for the typing to pause before asking the hub again. */
export function useSettled<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(t);
  }, [JSON.stringify(value)]);
  return settled;
}
