import { useEffect, useState } from 'preact/hooks';

export const BASE = '/console';

let current = currentPath();
const listeners = new Set<(path: string) => void>();

function currentPath(): string {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || '/' : '/';
  return path + location.search;
}

function set(path: string): void {
  current = path;
  for (const l of listeners) l(path);
}

window.addEventListener('popstate', () => set(currentPath()));

/** The console's path below /console with its query (e.g. `/jobs?status=running`), kept in step with the address bar. */
export function useRoute(): string {
  const [path, setPath] = useState(current);
  useEffect(() => {
    listeners.add(setPath);
    setPath(current); // a navigation between the first render and this subscription
    return () => void listeners.delete(setPath);
  }, []);
  return path;
}

export function navigate(to: string, replace = false): void {
  history[replace ? 'replaceState' : 'pushState'](null, '', BASE + to);
  set(to);
}

/** Where a 401 sends the operator: the login, and afterwards back to the page they were on. */
export function toLogin(): void {
  if (current.startsWith('/login')) return;
  navigate(`/login?next=${encodeURIComponent(current)}`, true);
}

/** A link inside the console: an ordinary anchor (keyboard, middle click) that navigates without a reload. */
export function onLink(e: MouseEvent): void {
  const a = e.currentTarget as HTMLAnchorElement;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.pathname.slice(BASE.length) + a.search);
}
