// The public transparency page: cameras, watchers, every unmask with its reason, and the log checkpoint.
const data = await (await fetch("/api/transparency")).json();
const when = (seconds) => new Date(seconds * 1000).toLocaleString();
function row(target, cells) {
  const tr = document.createElement("tr");
  for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
  document.querySelector(target).append(tr);
}
document.querySelector("#k").textContent = data.vault ? data.vault.k : "K";
document.querySelector("#n").textContent = data.vault ? data.vault.n : "N";
if (data.vault) {
  document.querySelector("#holders").textContent =
    `Key holders: ${data.vault.holders.join(", ")}. Vault fingerprint (SHA-256 of vault.json): ${data.vault.sha256}.`;
} else {
  document.querySelector("#holders").textContent = "No key vault is configured: raw faces are not kept at all.";
}
for (const camera of data.cameras) {
  row("#cameras", [camera.name, camera.location, camera.purpose,
    `${camera.retention_days} day${camera.retention_days === 1 ? "" : "s"}`,
    camera.steerable ? "yes" : "no", String(camera.watching)]);
}
if (!data.unmasks.length) row("#unmasks", ["none so far", "", "", "", "", "", ""]);
for (const u of data.unmasks) {
  const range = `${when(u.start)} – ${when(u.end)}` + (u.region ? ` (faces in ${u.region.join(",")})` : "");
  row("#unmasks", [when(u.created_at), u.camera, range, u.reason, u.requester,
    u.approvers.join(", ") || "—", u.status]);
}
for (const w of data.watched) row("#watched", [when(w.at), w.actor, w.kind, w.camera || ""]);
document.querySelector("#checkpoint").textContent = data.log.checkpoint;
document.querySelector("#vkey").textContent = data.log.verifier_key;
document.querySelector("#howto").textContent =
  `curl -s ${location.origin}/api/log/checkpoint > saved-checkpoint.txt\n` +
  `# … later:\nveilwatch audit verify --server ${location.origin} --key '${data.log.verifier_key}' --checkpoint saved-checkpoint.txt`;
