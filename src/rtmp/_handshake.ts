/**
 * RTMP server handshake. Answers both forms: the plain one (S2 echoes C1) and the digest
 * form (HMAC-SHA256 over C1/S1/S2 with the well-known Flash keys) that Flash-era encoders
 * and some hardware encoders check. Pure: C0+C1 in, S0+S1+S2 out.
 */

export const HANDSHAKE_SIZE = 1536;
export const RTMP_VERSION = 3;

const KEY_TAIL = [
  0xf0,
  0xee,
  0xc2,
  0x4a,
  0x80,
  0x68,
  0xbe,
  0xe8,
  0x2e,
  0x00,
  0xd0,
  0xd1,
  0x02,
  0x9e,
  0x7e,
  0x57,
  0x6e,
  0xec,
  0x5d,
  0x2d,
  0x29,
  0x80,
  0x6f,
  0xab,
  0x93,
  0xb8,
  0xe6,
  0x36,
  0xcf,
  0xeb,
  0x31,
  0xae,
];
const text = new TextEncoder();
const FP_KEY = new Uint8Array([...text.encode("Genuine Adobe Flash Player 001"), ...KEY_TAIL]);
const FMS_KEY = new Uint8Array([...text.encode("Genuine Adobe Flash Media Server 001"), ...KEY_TAIL]);
const FP_KEY_SHORT = FP_KEY.subarray(0, 30);
const FMS_KEY_SHORT = FMS_KEY.subarray(0, 36);
const DIGEST_SIZE = 32;

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      "sign",
    ],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data as BufferSource));
}

/** Digest offset inside a 1536-byte C1/S1 for scheme 0 (key block first) or 1 (digest first). */
function digestOffset(block: Uint8Array, scheme: 0 | 1): number {
  const base = scheme === 0 ? 772 : 8;
  const sum = block[base]! + block[base + 1]! + block[base + 2]! + block[base + 3]!;
  return (sum % 728) + base + 4;
}

function withoutDigest(block: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_SIZE - DIGEST_SIZE);
  out.set(block.subarray(0, offset), 0);
  out.set(block.subarray(offset + DIGEST_SIZE), offset);
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let d = 0;
  for (let i = 0; i < a.byteLength; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Finds C1's digest (Flash Player key) under either scheme; null for a plain handshake. */
async function findClientDigest(c1: Uint8Array): Promise<{ digest: Uint8Array; scheme: 0 | 1 } | null> {
  // A plain C1 has zero in the version field.
  if (c1[4] === 0 && c1[5] === 0 && c1[6] === 0 && c1[7] === 0) return null;
  for (const scheme of [1, 0] as const) {
    const off = digestOffset(c1, scheme);
    const expected = await hmac(FP_KEY_SHORT, withoutDigest(c1, off));
    const digest = c1.subarray(off, off + DIGEST_SIZE);
    if (equal(expected, digest)) return { digest, scheme };
  }
  return null;
}

/** Builds S0+S1+S2 for the given C0+C1 (1537 bytes). Throws `RangeError` on a wrong version. */
export async function serverHandshake(c0c1: Uint8Array): Promise<Uint8Array> {
  if (c0c1.byteLength !== 1 + HANDSHAKE_SIZE) throw new RangeError("C0+C1 must be 1537 bytes");
  if (c0c1[0] !== RTMP_VERSION) throw new RangeError(`unsupported RTMP version ${c0c1[0]}`);
  const c1 = c0c1.subarray(1);
  const out = new Uint8Array(1 + 2 * HANDSHAKE_SIZE);
  out[0] = RTMP_VERSION;
  const s1 = out.subarray(1, 1 + HANDSHAKE_SIZE);
  const s2 = out.subarray(1 + HANDSHAKE_SIZE);
  crypto.getRandomValues(s1.subarray(8));
  new DataView(s1.buffer, s1.byteOffset).setUint32(0, Math.floor(performance.now()) >>> 0);

  const client = await findClientDigest(c1);
  if (!client) {
    s2.set(c1);
    return out;
  }
  s1.set([4, 5, 0, 1], 4);
  const s1Off = digestOffset(s1, client.scheme);
  s1.set(await hmac(FMS_KEY_SHORT, withoutDigest(s1, s1Off)), s1Off);

  crypto.getRandomValues(s2.subarray(0, HANDSHAKE_SIZE - DIGEST_SIZE));
  const tempKey = await hmac(FMS_KEY, client.digest);
  s2.set(await hmac(tempKey, s2.subarray(0, HANDSHAKE_SIZE - DIGEST_SIZE)), HANDSHAKE_SIZE - DIGEST_SIZE);
  return out;
}

/** Client-side helpers for tests and the digest self-check: builds a digest C1. */
export async function buildDigestC1(scheme: 0 | 1): Promise<Uint8Array> {
  const c1 = new Uint8Array(HANDSHAKE_SIZE);
  crypto.getRandomValues(c1.subarray(8));
  c1.set([0x80, 0, 7, 2], 4);
  const off = digestOffset(c1, scheme);
  c1.set(await hmac(FP_KEY_SHORT, withoutDigest(c1, off)), off);
  return c1;
}

/** Verifies S1 and S2 as a digest-checking client would (used by tests). */
export async function verifyServerDigest(
  c1: Uint8Array,
  s1: Uint8Array,
  s2: Uint8Array,
  scheme: 0 | 1,
): Promise<boolean> {
  const s1Off = digestOffset(s1, scheme);
  const s1Ok = equal(
    await hmac(FMS_KEY_SHORT, withoutDigest(s1, s1Off)),
    s1.subarray(s1Off, s1Off + DIGEST_SIZE),
  );
  const c1Digest = c1.subarray(digestOffset(c1, scheme), digestOffset(c1, scheme) + DIGEST_SIZE);
  const tempKey = await hmac(FMS_KEY, c1Digest);
  const s2Ok = equal(
    await hmac(tempKey, s2.subarray(0, HANDSHAKE_SIZE - DIGEST_SIZE)),
    s2.subarray(HANDSHAKE_SIZE - DIGEST_SIZE),
  );
  return s1Ok && s2Ok;
}
