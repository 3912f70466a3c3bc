// The log-in page: log in, or register and log in; errors come from the API's bodies.
import { api, showError } from "./common.js";

const loginForm = document.getElementById("login-form");
const registerForm = document.getElementById("register-form");

async function logIn(username, password) {
  await api("POST", "/auth/login", { form: { grant_type: "password", username, password } });
  location.assign("/");
}

/** Runs a form's action with its button disabled, showing any failure on its error line. */
function handle(form, errorNode, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    showError(errorNode, null);
    try {
      await action(new FormData(form));
    } catch (error) {
      showError(errorNode, error.message);
      button.disabled = false;
    }
  });
}

handle(loginForm, document.getElementById("login-error"), (data) =>
  logIn(data.get("username").trim(), data.get("password")),
);

handle(registerForm, document.getElementById("register-error"), async (data) => {
  const name = data.get("name").trim();
  await api("POST", "/user", { json: { name, email: data.get("email").trim(), password: data.get("password") } });
  await logIn(name, data.get("password"));
});

document.getElementById("login-username").focus();
