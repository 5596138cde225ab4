import { post } from "/static/common.js";

document.querySelector("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await post("/api/login", { name: form.get("name"), password: form.get("password") });
    location.href = "/";
  } catch (error) {
    document.querySelector("#error").textContent = error.message;
  }
});
