// The grid: every camera this user may watch, live, with who is watching it.
import { header, me, roomSocket, watchersText } from "/static/common.js";

const user = await me();
header(user);
if (user.staff) document.querySelector("#unmask-link").hidden = false;
const grid = document.querySelector("#grid");
const cameras = await (await fetch("/api/cameras")).json();
for (const camera of cameras) {
  const tile = document.createElement("div");
  tile.className = "tile";
  tile.dataset.camera = camera.name;
  tile.innerHTML = `<a href="/cameras/${camera.name}"><img alt=""></a>
    <div class="meta"><span class="name"></span><span class="badge state"></span>
    <span class="location"></span><span class="watchers"></span></div>`;
  tile.querySelector("img").src = `/api/cameras/${camera.name}/stream.mjpg`;
  tile.querySelector("img").alt = `camera ${camera.name}, faces veiled`;
  tile.querySelector(".name").textContent = camera.name;
  tile.querySelector(".location").textContent = camera.location;
  grid.append(tile);
}
roomSocket((state) => {
  for (const [name, camera] of Object.entries(state.cameras)) {
    const tile = grid.querySelector(`[data-camera="${name}"]`);
    if (!tile) continue;
    const badge = tile.querySelector(".state");
    badge.textContent = camera.state;
    badge.className = `badge state ${camera.state}`;
    tile.querySelector(".watchers").textContent = `watching: ${watchersText(camera.watchers)}`;
  }
});
