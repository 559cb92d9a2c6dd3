import express, { type NextFunction, type Request, type Response } from 'express';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Where `npm run build` puts the console (vite, console/vite.config.ts): dist/console under the package root. */
export function consoleDir(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'dist', 'console');
}

/** Paths the console's static files answer without a token: they hold no data; every API call still needs one. */
export function isConsolePath(path: string): boolean {
  return path === '/console' || path.startsWith('/console/');
}

/**
 * The console's files under /console/: hashed assets cached for good, and every other path (a deep link such as
 * /console/jobs/<id> reloaded) answered with index.html, which the console's router reads. Only /console/ is
 * served so: /api/... keeps answering JSON, 404 included.
 */
export function serveConsole(dir: string) {
  const assets = express.static(dir, { index: false, immutable: true, maxAge: '365d', fallthrough: true, dotfiles: 'deny' });
  const index = join(dir, 'index.html');
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    if (req.path === '/' && req.originalUrl.split('?')[0] === '/console') return res.redirect(301, '/console/');
    const fallback = () => {
      if (!existsSync(index)) {
        res.status(503).type('text/plain').send('the console is not built: run npm run build\n');
        return;
      }
      res.setHeader('Cache-Control', 'no-cache');
      res.sendFile(index);
    };
    if (req.path.startsWith('/assets/')) return assets(req, res, fallback);
    fallback();
  };
}
