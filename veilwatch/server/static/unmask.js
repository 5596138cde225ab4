// Unmask requests: ask (with a reason), approve as a key holder, fetch the clip once K approved.
import { header, me, post } from "/static/common.js";

const user = await me();
header(user, "veilwatch — unmask requests");
const when = (seconds) => new Date(seconds * 1000).toLocaleString();
const local = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
document.querySelector("#start").value = local(new Date(Date.now() - 120 * 1000));
document.querySelector("#end").value = local(new Date(Date.now() - 60 * 1000));
for (const camera of await (await fetch("/api/cameras")).json()) {
  const option = document.createElement("option");
  option.value = option.textContent = camera.name;
  document.querySelector("#camera").append(option);
}
let selected = null;

async function load() {
  const response = await fetch("/api/unmask");
  const data = await response.json();
  const rows = document.querySelector("#requests");
  rows.replaceChildren();
  if (!response.ok) { rows.textContent = data.detail; return; }
  document.querySelector("#k").textContent = data.k;
  document.querySelector("#n").textContent = data.n;
  for (const r of data.requests) {
    const tr = document.createElement("tr");
    tr.dataset.request = r.id;
    const range = `${when(r.start)} – ${when(r.end)}` + (r.region ? ` (faces in ${r.region.join(",")})` : "");
    const cells = [when(r.created_at), r.camera, range, r.reason, r.requester,
      `${r.approvals.length} of ${data.k}: ${r.approvals.join(", ")}`, r.status];
    for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    const actions = document.createElement("td");
    if (r.status === "pending") {
      const approve = document.createElement("button");
      approve.textContent = "approve…";
      approve.className = "approve";
      approve.addEventListener("click", () => {
        selected = r.id;
        document.querySelector("#approve-id").textContent = r.id;
        document.querySelector("#approve").hidden = false;
      });
      const file = document.createElement("a");
      file.href = `/api/unmask/${r.id}/request.json`;
      file.textContent = "request file";
      file.download = `unmask-${r.id}.json`;
      actions.append(approve, " ", file);
    }
    if (r.clip_url) {
      const link = document.createElement("a");
      link.href = r.clip_url;
      link.textContent = "unmasked clip";
      link.className = "clip";
      actions.append(link);
    }
    tr.append(actions);
    rows.append(tr);
  }
}

document.querySelector("#ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.querySelector("#ask-error");
  error.textContent = "";
  try {
    await post("/api/unmask", {
      camera: document.querySelector("#camera").value,
      start: new Date(document.querySelector("#start").value).getTime() / 1000,
      end: new Date(document.querySelector("#end").value).getTime() / 1000,
      reason: document.querySelector("#reason").value,
      region: document.querySelector("#region").value.trim()
        ? document.querySelector("#region").value.split(",").map((v) => Number(v.trim())) : null,
    }, user.csrf);
    await load();
  } catch (e) { error.textContent = e.message; }
});

document.querySelector("#approve").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.querySelector("#approve-error");
  error.textContent = "";
  const file = document.querySelector("#share").files[0];
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  try {
    await post(`/api/unmask/${selected}/approve-with-share`,
      { share: btoa(binary), passphrase: document.querySelector("#passphrase").value }, user.csrf);
    document.querySelector("#passphrase").value = "";
    document.querySelector("#share").value = "";
    document.querySelector("#approve").hidden = true;
    await load();
  } catch (e) { error.textContent = e.message; }
});
load();
