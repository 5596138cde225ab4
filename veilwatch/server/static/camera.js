// One camera: the live view, who watches it, and steering in turns (a lease with a countdown).
import { header, me, post, roomSocket, watchersText } from "/static/common.js";

const name = decodeURIComponent(location.pathname.split("/").pop());
const user = await me();
header(user, `veilwatch — ${name}`);
document.querySelector("#title").textContent = name;
document.querySelector("#live").src = `/api/cameras/${name}/stream.mjpg`;
document.querySelector("#recordings").href = `/recordings/${name}`;
document.querySelector("#recordings").hidden = !user.staff;
document.querySelector("#takeover").hidden = !["operator", "admin"].includes(user.role);
const error = document.querySelector("#error");

async function act(url, body) {
  error.textContent = "";
  try { return await post(url, body, user.csrf); } catch (failure) { error.textContent = failure.message; return null; }
}

document.querySelector("#request").addEventListener("click", () => act(`/api/cameras/${name}/control/request`));
document.querySelector("#release").addEventListener("click", () => act(`/api/cameras/${name}/control/release`));
document.querySelector("#takeover").addEventListener("click", () => act(`/api/cameras/${name}/control/takeover`));
for (const button of document.querySelectorAll(".pad button")) {
  button.addEventListener("click", () => act(`/api/cameras/${name}/ptz`, {
    pan: Number(button.dataset.pan || 0), tilt: Number(button.dataset.tilt || 0),
    zoom: Number(button.dataset.zoom || 0), reset: Boolean(button.dataset.reset),
  }));
}

roomSocket((state) => {
  const camera = state.cameras[name];
  if (!camera) return;
  const badge = document.querySelector("#state");
  badge.textContent = camera.state;
  badge.className = `badge state ${camera.state}`;
  document.querySelector("#watchers").textContent = `watching: ${watchersText(camera.watchers)}`;
  const control = camera.control;
  const mine = control.holder === user.name;
  document.querySelector("#lease").textContent = control.holder
    ? `${mine ? "you steer" : `${control.holder} steers`} · ${Math.ceil(control.remaining_s)} s left`
    : "nobody steers";
  const waiting = control.queue.indexOf(user.name);
  document.querySelector("#queue").textContent = control.queue.length
    ? `queue: ${control.queue.length}${waiting >= 0 ? ` (you are #${waiting + 1})` : ""}` : "";
  for (const button of document.querySelectorAll(".pad button")) button.disabled = !mine;
  // Honest about what the pad moves: the camera itself (ONVIF PTZ, everyone in the room sees it turn) or the crop.
  document.querySelector("#ptz-mode").textContent =
    camera.ptz === "onvif" ? "steers the camera itself (ONVIF PTZ)" : "digital pan/tilt/zoom";
});
