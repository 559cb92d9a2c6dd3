import type { Duplex } from 'node:stream';

/**
 * Joins two streams both ways with backpressure. Half-closes travel across (an EOF on one side
 * ends the other's writable side); once either side is fully closed or fails, both are destroyed
 * so no socket or channel outlives its partner.
 */
export function splice(a: Duplex, b: Duplex): void {
  let done = false;
  const teardown = () => {
    if (done) return;
    done = true;
    a.destroy();
    b.destroy();
  };
  a.once('close', teardown);
  b.once('close', teardown);
  a.on('error', teardown);
  b.on('error', teardown);
  pipeHalfClosing(a, b);
  pipeHalfClosing(b, a);
}

type SshChannel = Duplex & { server?: boolean; eof?: () => void };

function pipeHalfClosing(from: Duplex, to: SshChannel): void {
  if (to.server !== true || typeof to.eof !== 'function') {
    from.pipe(to);
    return;
  }
  // ssh2's server-side channels send CLOSE right after EOF on end(), which would cut off the
  // answer to a peer that half-closed; a bare EOF, after the queued data, keeps the way back open.
  from.pipe(to, { end: false });
  from.once('end', () => to.write(Buffer.alloc(0), () => to.eof?.()));
}
