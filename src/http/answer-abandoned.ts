import type { Request, Response } from 'express';

/**
 * Aborted once the client's connection ends before the answer was sent (its request timed out, its tunnel dropped):
 * what the request made and only its answer would name (an export's id) is nobody's to close later. A client gone
 * sends a FIN, which node's server sees as the socket's end and answers into anyway: that end counts, as does a close.
 */
export function answerAbandoned(req: Request, res: Response): AbortSignal {
  const gone = new AbortController();
  const abandon = () => {
    if (!res.writableFinished) gone.abort();
  };
  const socket = req.socket;
  // a FIN that came with the request's last bytes was read before any handler ran
  if (socket.readableEnded || socket.destroyed) gone.abort();
  socket.once('end', abandon);
  res.once('close', () => {
    socket.off('end', abandon);
    abandon();
  });
  return gone.signal;
}
