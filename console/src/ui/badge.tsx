/** A state said three ways, never by colour alone: an icon, a word, and the tone's colour. */
export type Tone = 'ok' | 'warn' | 'bad' | 'idle';
const ICON: Record<Tone, string> = { ok: '✓', warn: '!', bad: '✕', idle: '○' };

export function Badge({ tone, text, state }: { tone: Tone; text: string; state?: string }) {
  return (
    <span class={`badge badge-${tone}`} data-state={state}>
      <span aria-hidden="true" class="badge-icon">{ICON[tone]}</span>
      {text}
    </span>
  );
}
