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

/** A fixed self-signed certificate for 127.0.0.1 and localhost, valid 2020–2120; test use only (no openssl needed). */
export const tlsKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIADrxdYsK4m37DYjctCBogP7a0fRIdS2YNqswiafprU3oAoGCCqGSM49
AwEHoUQDQgAEWJX3MZ3CE87bOLHjIuGw/vcbie0Lz9pGySHbzz9dbr0/hDG4OxDa
thhvKMB6TU/2vKAHqGM5J48f02VYUWJjXA==
-----END EC PRIVATE KEY-----
`;
/** The certificate of `tlsKey`. */
export const tlsCert = `-----BEGIN CERTIFICATE-----
MIIBZTCCAQqgAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAlsb2NhbGhv
c3QwIBcNMjAwMTAxMDAwMDAwWhgPMjEyMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM
CWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFiV9zGdwhPO2zix
4yLhsP73G4ntC8/aRskh288/XW69P4QxuDsQ2rYYbyjAek1P9rygB6hjOSePH9Nl
WFFiY1yjSzBJMBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNVHRMBAf8E
AjAAMB0GA1UdDgQWBBTURDXKWvXB3layt2yhNb9vFokxbjAKBggqhkjOPQQDAgNJ
ADBGAiEApujLpN2XdjKVbfti2S1WDi9zFdDGPzo37/OCLJk9NKgCIQD+YGlNugmH
RhUBquy1BYWjXQ7iXYdp0+oxuHouYg3g0w==
-----END CERTIFICATE-----
`;
