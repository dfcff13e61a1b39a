import assert from "node:assert/strict";
import { buildDigestC1, HANDSHAKE_SIZE, serverHandshake, verifyServerDigest } from "./mod.ts";

function c0(c1: Uint8Array, version = 3): Uint8Array {
  const out = new Uint8Array(1 + HANDSHAKE_SIZE);
  out[0] = version;
  out.set(c1, 1);
  return out;
}

function split(reply: Uint8Array) {
  assert.equal(reply.byteLength, 1 + 2 * HANDSHAKE_SIZE);
  return {
    s0: reply[0],
    s1: reply.subarray(1, 1 + HANDSHAKE_SIZE),
    s2: reply.subarray(1 + HANDSHAKE_SIZE),
  };
}

Deno.test("handshake: plain C1 (zero version field) gets S2 = C1 echoed", async () => {
  const c1 = new Uint8Array(HANDSHAKE_SIZE);
  crypto.getRandomValues(c1.subarray(8));
  const { s0, s1, s2 } = split(await serverHandshake(c0(c1)));
  assert.equal(s0, 3);
  assert.deepEqual(s2, c1);
  assert.notDeepEqual(s1, c1);
});

Deno.test("handshake: a C1 with a version but no valid digest falls back to the plain echo", async () => {
  const c1 = new Uint8Array(HANDSHAKE_SIZE);
  crypto.getRandomValues(c1);
  c1.set([0x80, 0, 7, 2], 4);
  const { s2 } = split(await serverHandshake(c0(c1)));
  assert.deepEqual(s2, c1);
});

for (const scheme of [0, 1] as const) {
  Deno.test(`handshake: digest scheme ${scheme} gets S1/S2 a Flash client accepts`, async () => {
    const c1 = await buildDigestC1(scheme);
    const { s0, s1, s2 } = split(await serverHandshake(c0(c1)));
    assert.equal(s0, 3);
    assert.deepEqual([...s1.subarray(4, 8)], [4, 5, 0, 1], "server version in S1");
    assert.notDeepEqual(s2, c1, "digest handshake must not echo C1");
    assert.equal(await verifyServerDigest(c1, s1, s2, scheme), true);

    // Any corruption is caught by the client-side check.
    const badS2 = s2.slice();
    badS2[100]! ^= 1;
    assert.equal(await verifyServerDigest(c1, s1, badS2, scheme), false);
    const badS1 = s1.slice();
    badS1[1000]! ^= 0xff;
    badS1[20]! ^= 0xff;
    assert.equal(await verifyServerDigest(c1, badS1, s2, scheme), false);
  });
}

Deno.test("handshake: each digest scheme is answered in its own layout", async () => {
  // A scheme-1 answer does not verify as scheme 0 (the digest sits elsewhere).
  const c1 = await buildDigestC1(1);
  const { s1, s2 } = split(await serverHandshake(c0(c1)));
  assert.equal(await verifyServerDigest(c1, s1, s2, 1), true);
  assert.equal(await verifyServerDigest(c1, s1, s2, 0), false);
});

Deno.test("handshake: wrong version or size is a RangeError", async () => {
  const c1 = new Uint8Array(HANDSHAKE_SIZE);
  for (const version of [0, 6, 0xff]) {
    await assert.rejects(serverHandshake(c0(c1, version)), RangeError);
  }
  await assert.rejects(serverHandshake(new Uint8Array(100)), RangeError);
  await assert.rejects(serverHandshake(new Uint8Array(1 + HANDSHAKE_SIZE + 1)), RangeError);
});
