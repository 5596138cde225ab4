// Shared by every page: who am I, and requests that carry the CSRF token.
export async function me() {
  const response = await fetch("/api/me", { headers: { Accept: "application/json" } });
  if (response.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  return response.json();
}

export async function post(url, body, csrf) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf || "" },
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await response.json(); } catch { /* empty body */ }
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}

export function watchersText(watchers) {
  const staff = watchers.staff.length ? watchers.staff.join(", ") : "";
  const visitors = watchers.visitors ? `${watchers.visitors} visitor${watchers.visitors === 1 ? "" : "s"}` : "";
  return [staff, visitors].filter(Boolean).join(" + ") || "nobody";
}

export function header(user, title) {
  document.querySelector("#who").textContent = `${user.name} (${user.role})`;
  document.querySelector("#logout").addEventListener("click", async () => {
    await post("/api/logout", {}, user.csrf).catch(() => {});
    location.href = "/login";
  });
  if (title) document.title = title;
}

export function roomSocket(onState) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/room`);
  socket.addEventListener("message", (event) => onState(JSON.parse(event.data)));
  socket.addEventListener("close", () => setTimeout(() => roomSocket(onState), 2000));
  return socket;
}
