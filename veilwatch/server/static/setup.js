import { post } from "/static/common.js";

document.querySelector("#setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const token = new URLSearchParams(location.search).get("token") || "";
  try {
    await post("/api/setup", { token, name: form.get("name"), password: form.get("password") });
    location.href = "/";
  } catch (error) {
    document.querySelector("#error").textContent = error.message;
  }
});
