/**
 * TLS material for the relay. By default each node makes a fresh self-signed P-256
 * certificate at start (CA:FALSE, as rustls requires of a pinned end-entity certificate)
 * and peers pin it: they learn it through the authenticated control plane and trust only it.
 * Operators with a PKI configure cert/key files (and a CA file peers verify against).
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/** The name every relay certificate carries and every relay client asks for. */
export const RELAY_SERVER_NAME = "streamcluster-relay";

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  /** PEM trust anchors for peers; empty = pin each peer's advertised certificate. */
  caPem: string;
}

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export async function generateSelfSigned(): Promise<TlsMaterial> {
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const serial = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${serial}`,
    name: `CN=${RELAY_SERVER_NAME}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: RELAY_SERVER_NAME }]),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  let b64 = "";
  for (let i = 0; i < pkcs8.length; i += 0x8000) b64 += String.fromCharCode(...pkcs8.subarray(i, i + 0x8000));
  const lines = btoa(b64).match(/.{1,64}/g) ?? [];
  return {
    certPem: cert.toString("pem"),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`,
    caPem: "",
  };
}

export async function loadTls(certFile: string, keyFile: string, caFile: string): Promise<TlsMaterial> {
  return {
    certPem: await Deno.readTextFile(certFile),
    keyPem: await Deno.readTextFile(keyFile),
    caPem: caFile ? await Deno.readTextFile(caFile) : "",
  };
}
