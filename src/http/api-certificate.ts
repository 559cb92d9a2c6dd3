import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import type { HubConfig } from '../config/hub-config';
import { ProcessError, runProcess } from '../process';
import { certificateFingerprint } from '../wire/hub-tls';

export interface ApiCertificate {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
  certFile: string;
  /** Made by this start (first start with TLS on). */
  generated: boolean;
}

/** Ten years: clients pin the certificate itself and do not judge its dates, so expiry would only break browsers. */
const VALIDITY_DAYS = 3650;

/**
 * The API's certificate: the operator's (SENDENSE_TLS_CERT/KEY), else the one the hub made in its data dir at its
 * first start with TLS on (`tls/api.crt`, `tls/api.key` 0600), so its fingerprint, which clients pin, survives
 * restarts. ECDSA P-256: every browser and TLS client takes it (ed25519 certificates most browsers refuse).
 */
export async function ensureApiCertificate(config: HubConfig): Promise<ApiCertificate> {
  const given = config.apiTls.certFile !== null && config.apiTls.keyFile !== null;
  const certFile = config.apiTls.certFile ?? join(config.dataDir, 'tls', 'api.crt');
  const keyFile = config.apiTls.keyFile ?? join(config.dataDir, 'tls', 'api.key');
  let generated = false;
  if (!given && !(existsSync(certFile) && existsSync(keyFile))) {
    await makeSelfSigned(certFile, keyFile, config.apiBind);
    generated = true;
  }
  const source = given ? 'SENDENSE_TLS_CERT' : certFile;
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (error) {
    throw new Error(`cannot read the API's TLS certificate or key (${given ? 'SENDENSE_TLS_CERT / SENDENSE_TLS_KEY' : `${certFile}, ${keyFile}`}): ${(error as Error).message}`);
  }
  let leaf: X509Certificate;
  try {
    // a chain file: the first certificate is the server's own, the one clients see and pin
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new Error(`${source} (${certFile}) is not a PEM certificate: ${(error as Error).message}`);
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new Error(`${given ? 'SENDENSE_TLS_KEY' : keyFile} (${keyFile}) is not a PEM private key: ${(error as Error).message}`);
  }
  if (!matches) throw new Error(`the private key ${keyFile} does not belong to the certificate ${certFile}`);
  return { cert, key, fingerprint: certificateFingerprint(leaf.raw), certFile, generated };
}

async function makeSelfSigned(certFile: string, keyFile: string, apiBind: string): Promise<void> {
  const dir = join(certFile, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // names only help a browser's warning page: clients pin the fingerprint, not a name
  const names = [`DNS:${hostname()}`, 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...(isIP(apiBind) && apiBind !== '0.0.0.0' && apiBind !== '::' ? [`IP:${apiBind}`] : [])];
  const tmpCert = `${certFile}.tmp-${process.pid}`;
  const tmpKey = `${keyFile}.tmp-${process.pid}`;
  try {
    await runProcess(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', tmpKey, '-out', tmpCert, '-days', String(VALIDITY_DAYS), '-subj', `/CN=sendense-hub ${hostname()}`.slice(0, 64), '-addext', `subjectAltName=${[...new Set(names)].join(',')}`],
      { timeoutMs: 30_000 },
    );
    chmodSync(tmpKey, 0o600);
    // key first: a cert without its key is never left for the next start to find
    renameSync(tmpKey, keyFile);
    renameSync(tmpCert, certFile);
  } catch (error) {
    rmSync(tmpCert, { force: true });
    rmSync(tmpKey, { force: true });
    if (error instanceof ProcessError && error.failure.kind === 'spawn') {
      throw new Error('the hub makes its TLS certificate with openssl, which is not installed: install openssl, or give your own certificate in SENDENSE_TLS_CERT and SENDENSE_TLS_KEY');
    }
    throw error;
  }
}
