// The audit log's checks, computed in the browser with WebCrypto: RFC 6962 leaf and node
// hashes, RFC 9162 inclusion and consistency proof verification, C2SP signed-note checkpoints
// with Ed25519 signatures. The same rules as maestro_gate.core.ledger.merkle and core.checkpoint;
// nothing here trusts a hash or a verdict the server sent.

const encoder = new TextEncoder();
const SIGNATURE_PREFIX = "\u2014 ";
const ED25519 = 0x01;

export class CheckFailed extends Error {}

export function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/.test(hex)) {
    throw new CheckFailed(`not lower-case hex: ${String(hex).slice(0, 20)}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function base64ToBytes(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new CheckFailed("not base64");
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

export function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** RFC 6962 leaf hash of the record text's UTF-8 bytes: SHA-256(0x00 || data). */
export async function leafHash(text) {
  return sha256(Uint8Array.of(0), encoder.encode(text));
}

async function nodeHash(left, right) {
  return sha256(Uint8Array.of(1), left, right);
}

/** A C2SP verifier key `<name>+<hex key id>+<base64(0x01 || key)>`, its key id checked. */
export async function verifierKey(text) {
  const parts = String(text).trim().split("+");
  if (parts.length < 3 || !/^[^\s+]+$/.test(parts[0])) {
    throw new CheckFailed("a verification key reads <name>+<hex key id>+<base64 key>");
  }
  const name = parts[0];
  const keyId = hexToBytes(parts[1]);
  const raw = base64ToBytes(parts.slice(2).join("+"));
  if (raw.length !== 33 || raw[0] !== ED25519) {
    throw new CheckFailed("only Ed25519 verification keys (type 0x01, 32 bytes) are supported");
  }
  const publicKey = raw.slice(1);
  const expected = (await sha256(encoder.encode(name + "\n"), Uint8Array.of(ED25519), publicKey)).slice(0, 4);
  if (!equal(keyId, expected)) throw new CheckFailed("the key id does not match the key's name and bytes");
  return { name, keyId, publicKey, text: String(text).trim() };
}

/** Split a signed note into its body and its signature lines (C2SP signed-note). */
export function parseNote(text) {
  if (!text.endsWith("\n") || !text.includes("\n\n")) {
    throw new CheckFailed("a note is a body, a blank line and signature lines");
  }
  const split = text.lastIndexOf("\n\n");
  const body = text.slice(0, split + 1);
  const lines = text.slice(split + 2).split("\n").filter((line) => line !== "");
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw new CheckFailed(`not a signature line: ${line}`);
    const fields = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (fields.length !== 2) throw new CheckFailed(`malformed signature line: ${line}`);
    const raw = base64ToBytes(fields[1]);
    if (raw.length < 5) throw new CheckFailed("signature too short");
    return { name: fields[0], keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  if (!signatures.length) throw new CheckFailed("the note has no signature lines");
  return { body, signatures };
}

/** The checkpoint (origin, size, root) of a note body. */
export function parseCheckpoint(body) {
  const lines = body.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") throw new CheckFailed("malformed checkpoint body");
  if (!lines[0] || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new CheckFailed("malformed checkpoint origin or size");
  const root = base64ToBytes(lines[2]);
  if (root.length !== 32) throw new CheckFailed("the checkpoint root is not 32 bytes");
  return { origin: lines[0], size: BigInt(lines[1]), root };
}

/** The checkpoint of a note that `key` signed; CheckFailed otherwise (WebCrypto Ed25519). */
export async function openCheckpoint(note, key) {
  const { body, signatures } = parseNote(note);
  const mine = signatures.filter((s) => s.name === key.name && equal(s.keyId, key.keyId));
  if (!mine.length) {
    throw new CheckFailed(`the checkpoint carries no signature by the pinned key ${key.name}+${bytesToHex(key.keyId)}`);
  }
  const publicKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
  for (const s of mine) {
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, s.signature, encoder.encode(body));
    if (!ok) throw new CheckFailed("the checkpoint signature does not verify against the pinned key (forged or altered)");
  }
  return parseCheckpoint(body);
}

/** RFC 9162 2.1.3.2: `leaf` at `index` is in the tree of `size` leaves with `root`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) throw new CheckFailed(`record ${index} is outside a tree of ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new CheckFailed("the inclusion proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new CheckFailed("the inclusion proof is too short");
  if (!equal(r, root)) {
    throw new CheckFailed(`the record and its proof give the root ${bytesToHex(r)}, not the signed ${bytesToHex(root)}`);
  }
}

function isPowerOfTwo(n) {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/** RFC 9162 2.1.4.2: the tree of `first` leaves (`firstRoot`) is a prefix of the one of `second`. */
export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  if (first > second) throw new CheckFailed(`the log shrank from ${first} to ${second} records`);
  if (first === second) {
    if (proof.length) throw new CheckFailed("a proof between equal sizes must be empty");
    if (!equal(firstRoot, secondRoot)) throw new CheckFailed(`two different roots for the same ${first} records: the log was rewritten`);
    return;
  }
  if (first === 0n) return;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  if (!path.length) throw new CheckFailed("the consistency proof is empty");
  let fn = first - 1n;
  let sn = second - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new CheckFailed("the consistency proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new CheckFailed("the consistency proof is too short");
  if (!equal(fr, firstRoot)) throw new CheckFailed("the pinned checkpoint's records are not a prefix of the log now: it was rewritten");
  if (!equal(sr, secondRoot)) throw new CheckFailed("the consistency proof does not reach the new signed root");
}
