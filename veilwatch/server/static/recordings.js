// Playback of veiled recordings by time (every playback is recorded).
import { header, me, post } from "/static/common.js";

const name = decodeURIComponent(location.pathname.split("/").pop());
const user = await me();
header(user, `veilwatch — recordings of ${name}`);
document.querySelector("#title").textContent = `recordings · ${name}`;
const local = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
document.querySelector("#from").value = local(new Date(Date.now() - 600 * 1000));
document.querySelector("#to").value = local(new Date(Date.now() + 60 * 1000));

async function load() {
  const start = new Date(document.querySelector("#from").value).getTime() / 1000;
  const end = new Date(document.querySelector("#to").value).getTime() / 1000;
  const response = await fetch(`/api/cameras/${name}/recordings?start=${start}&end=${end}`);
  const rows = document.querySelector("#segments");
  rows.replaceChildren();
  if (!response.ok) { rows.textContent = (await response.json()).detail; return; }
  for (const segment of await response.json()) {
    const row = document.createElement("tr");
    const cells = [new Date(segment.start * 1000).toLocaleString(), new Date(segment.end * 1000).toLocaleTimeString(),
      `${(segment.bytes / 1e6).toFixed(1)} MB`];
    for (const text of cells) { const cell = document.createElement("td"); cell.textContent = text; row.append(cell); }
    const play = document.createElement("button");
    play.textContent = "play";
    play.addEventListener("click", () => { const video = document.querySelector("#player"); video.src = `/api/recordings/${segment.id}.mp4`; video.play(); });
    const cell = document.createElement("td"); cell.append(play); row.append(cell);
    rows.append(row);
  }
}
document.querySelector("#load").addEventListener("click", load);
document.querySelector("#export").addEventListener("click", async () => {
  const out = document.querySelector("#exported");
  out.textContent = "exporting…";
  try {
    const made = await post(`/api/cameras/${name}/exports`, {
      start: new Date(document.querySelector("#from").value).getTime() / 1000,
      end: new Date(document.querySelector("#to").value).getTime() / 1000,
    }, user.csrf);
    out.replaceChildren();
    for (const [href, text] of [[made.clip_url, "clip"], [made.manifest_url, "manifest"]]) {
      const link = document.createElement("a");
      link.href = href; link.textContent = text; link.download = "";
      out.append(link, " ");
    }
    out.append(`log entry ${made.log_index}; check with: veilwatch audit verify-export CLIP --key …`);
  } catch (e) { out.textContent = e.message; }
});
load();
