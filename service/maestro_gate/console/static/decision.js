// The decision page's own verification: the record against the signed log, in this browser.
import {
  CheckFailed, bytesToHex, equal, hexToBytes, leafHash, openCheckpoint, verifierKey,
  verifyConsistency, verifyInclusion,
} from "/console/static/verify.js";

const KEY = "maestro-console:vkey";
const PINNED = "maestro-console:checkpoint";
const section = document.getElementById("verification");
const checks = document.getElementById("checks");
const verdict = document.getElementById("verdict");

function step(ok, text) {
  const item = document.createElement("li");
  item.className = ok === true ? "ok" : ok === false ? "failed" : "info";
  item.textContent = text;
  checks.append(item);
}

function conclude(ok, text) {
  verdict.className = `verdict-line ${ok ? "ok" : "failed"}`;
  verdict.textContent = text;
  section.dataset.result = ok ? "verified" : "failed";
}

async function json(url, init) {
  const response = await fetch(url, { credentials: "same-origin", ...init });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new CheckFailed(`${url.split("?")[0]} answered ${response.status}: ${body.problem || ""}`);
  return body;
}

function fieldsMatch(record) {
  for (const el of document.querySelectorAll("[data-field]")) {
    const value = el.dataset.field.split(".").reduce((v, k) => (v == null ? v : v[k]), record);
    const shown = el.textContent.trim();
    if (String(value ?? "—") !== shown) {
      throw new CheckFailed(`the page shows ${el.dataset.field} "${shown}" but the record says "${value}"`);
    }
  }
}

async function consistentWithPinned(key, checkpoint, note) {
  const saved = JSON.parse(localStorage.getItem(PINNED) || "null");
  if (!saved || saved.key !== key.text) {
    step(null, `First check with this key: the checkpoint of ${checkpoint.size} records is pinned for later visits.`);
    return true;
  }
  const pinned = await openCheckpoint(saved.note, key);
  const size = pinned.size;
  if (size > checkpoint.size) {
    throw new CheckFailed(`the log shrank: ${size} records were signed at the last visit, ${checkpoint.size} now`);
  }
  let proof = [];
  if (size !== checkpoint.size) {
    const answer = await json(`/console/audit/consistency?first=${size}&second=${checkpoint.size}`);
    proof = answer.proof.map(hexToBytes);
  }
  await verifyConsistency(size, checkpoint.size, pinned.root, checkpoint.root, proof);
  step(true, `Consistent with the checkpoint pinned at the last visit (${size} → ${checkpoint.size} records): nothing was rewritten.`);
  return true;
}

async function verify() {
  delete section.dataset.result;
  verdict.className = "verdict-line pending";
  verdict.textContent = "Checking…";
  checks.replaceChildren();
  const pinnedKey = localStorage.getItem(KEY);
  document.getElementById("pin-form").hidden = Boolean(pinnedKey);
  document.getElementById("unpin").hidden = !pinnedKey;
  document.getElementById("sign-now").hidden = true;
  if (!pinnedKey) {
    document.getElementById("pinned-key").textContent = "No verification key is pinned in this browser.";
    conclude(false, "Not verified: pin the log's verification key first.");
    return;
  }
  document.getElementById("pinned-key").textContent = `Pinned key: ${pinnedKey}`;
  try {
    const key = await verifierKey(pinnedKey);
    const raw = document.getElementById("raw-record").textContent;
    const index = BigInt(section.dataset.index);
    const record = JSON.parse(raw);
    if (BigInt(record.index) !== index || record.decision_id !== section.dataset.decisionId) {
      throw new CheckFailed("the raw record is not the record this page is about");
    }
    fieldsMatch(record);
    const leaf = await leafHash(raw);
    step(true, `Leaf hash recomputed from the canonical record: ${bytesToHex(leaf)}`);
    const latest = await json("/console/audit/checkpoint");
    if (!latest.checkpoint) {
      document.getElementById("sign-now").hidden = false;
      throw new CheckFailed("the gate has signed no checkpoint yet");
    }
    const checkpoint = await openCheckpoint(latest.checkpoint.note, key);
    step(true, `Checkpoint of ${checkpoint.size} records (${checkpoint.origin}) signed by the pinned key ${key.name}; Ed25519 verified.`);
    if (index >= checkpoint.size) {
      document.getElementById("sign-now").hidden = false;
      throw new CheckFailed(`record ${index} is newer than the latest signed checkpoint (${checkpoint.size} records)`);
    }
    const answer = await json(`/console/audit/inclusion?index=${index}&tree_size=${checkpoint.size}`);
    await verifyInclusion(index, checkpoint.size, leaf, answer.proof.map(hexToBytes), checkpoint.root);
    step(true, `Inclusion proof (${answer.proof.length} hashes) leads from the leaf to the signed root ${bytesToHex(checkpoint.root)}.`);
    await consistentWithPinned(key, checkpoint, latest.checkpoint.note);
    localStorage.setItem(PINNED, JSON.stringify({ key: key.text, note: latest.checkpoint.note }));
    conclude(true, "Verified: this record is in the log the pinned key signed, and the log was not rewritten since the last visit.");
  } catch (error) {
    const text = error instanceof CheckFailed ? error.message : `the check could not run: ${error}`;
    step(false, text);
    conclude(false, `Not verified: ${text}`);
  }
}

document.getElementById("pin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  delete section.dataset.result;
  const text = document.getElementById("vkey").value.trim();
  try {
    await verifierKey(text);
  } catch (error) {
    conclude(false, `Not pinned: ${error.message}`);
    return;
  }
  localStorage.setItem(KEY, text);
  localStorage.removeItem(PINNED);
  await verify();
});

document.getElementById("unpin").addEventListener("click", async () => {
  localStorage.removeItem(KEY);
  localStorage.removeItem(PINNED);
  await verify();
});

document.getElementById("sign-now").addEventListener("click", async (event) => {
  await json("/console/audit/checkpoint", {
    method: "POST", headers: { "X-CSRF-Token": event.target.dataset.csrf },
  }).catch((error) => conclude(false, `Not signed: ${error.message}`));
  await verify();
});

verify();
