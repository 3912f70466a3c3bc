// The log-in page: log in, or register and log in. Fields are checked here first, against
// the limits the server enforces (`GET /limits`); what only the server knows (a wrong
// password, a name already taken) comes from the API's error bodies.
import { api, characterCount, checkFields, clearErrors, inputLimits, passwordProblem, showError } from "./common.js";

const loginForm = document.getElementById("login-form");
const registerForm = document.getElementById("register-form");
const field = (id) => document.getElementById(id);

async function logIn(username, password) {
  await api("POST", "/auth/login", { form: { grant_type: "password", username, password } });
  location.assign("/");
}

/** Says why the log-in page is back when a page's session ended (`sessionEnded` in common.js). */
function showSessionEnded() {
  if (new URLSearchParams(location.search).get("session") !== "ended") return;
  showError(
    field("login-error"),
    "Your session ended: you logged out on another device, changed your password, or the server restarted. " +
      "Please log in again.",
  );
  history.replaceState(null, "", "/");
}

/**
 * Runs a form's action after its checks pass, with its button disabled, showing a failure on
 * its error line.
 */
function handle(form, errorNode, check, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorNode, null);
    if (!(await check())) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await action(new FormData(form));
    } catch (error) {
      showError(errorNode, error.message);
      button.disabled = false;
    }
  });
  // Messages about one form are stale once the user turns to the other.
  form.addEventListener("focusin", () => clearErrors(form === loginForm ? registerForm : loginForm));
}

const required = (what) => (value) => (value.trim() ? null : `Enter ${what}.`);

handle(
  loginForm,
  field("login-error"),
  () =>
    checkFields([
      [field("login-username"), required("your name or email")],
      [field("login-password"), (value) => (value ? null : "Enter your password.")],
    ]),
  (data) => logIn(data.get("username").trim(), data.get("password")),
);

handle(
  registerForm,
  field("register-error"),
  async () => {
    const limits = await inputLimits();
    return checkFields([
      [
        field("register-name"),
        (value) => {
          const name = value.trim();
          if (!name) return "Enter a name.";
          if (name.includes("@")) return "A name cannot contain @ (it would read as an email at log-in).";
          const length = characterCount(name);
          if (length > limits.max_user_name_length) {
            return `At most ${limits.max_user_name_length} characters: this one has ${length}.`;
          }
          return null;
        },
      ],
      [
        field("register-email"),
        (value) => {
          const email = value.trim();
          if (!email) return "Enter your email address.";
          if (characterCount(email) > limits.max_email_length || !/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(email)) {
            return "Enter an email address like name@example.com.";
          }
          return null;
        },
      ],
      [
        field("register-password"),
        (value) => passwordProblem(value, limits),
      ],
    ]);
  },
  async (data) => {
    const name = data.get("name").trim();
    await api("POST", "/user", { json: { name, email: data.get("email").trim(), password: data.get("password") } });
    await logIn(name, data.get("password"));
  },
);

inputLimits()
  .then((limits) => {
    field("register-name-hint").textContent =
      `How others find and see you: up to ${limits.max_user_name_length} characters, without @.`;
    field("register-password-hint").textContent = `At least ${limits.min_password_length} characters.`;
  })
  .catch(() => {});
showSessionEnded();
field("login-username").focus();
