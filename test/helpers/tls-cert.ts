import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A throwaway self-signed certificate for localhost and 127.0.0.1, valid for a day. */
export interface TestCert {
  key: Buffer;
  cert: Buffer;
}

/** Makes a certificate with openssl; resolves undefined (with why) when openssl is missing. */
export async function makeTestCert(): Promise<TestCert | string> {
  const dir = await mkdtemp(join(tmpdir(), 'wsconn-tls-'));
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')];
  try {
    await promisify(execFile)('openssl', args, { timeout: 10_000 });
    return { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) };
  } catch (err) {
    return `openssl could not make a test certificate: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
