/**
 * A select's options from a list the page loads on its own. The chosen id stays an option while the list is still
 * loading or no longer holds it (an agent removed, a repository out of reach): otherwise the browser shows the first
 * option as chosen, and the form would look as if it said something it does not.
 */
export function Options({ items, chosen }: { items: { id: string; name: string }[]; chosen: string | undefined }) {
  const unlisted = chosen && !items.some((i) => i.id === chosen);
  return (
    <>
      {unlisted && <option value={chosen}>{chosen} (not listed)</option>}
      {items.map((i) => <option key={i.id} value={i.id}>{i.name}</option>)}
    </>
  );
}
