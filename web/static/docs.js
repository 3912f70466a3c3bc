// The API reference at /docs, rendered by this page from the server's own /openapi.json: it
// needs no other host (a self-hosted server often cannot reach a CDN), and every string of
// the document enters the page as text. See docs/web-client.md.
import { api, el } from "./common.js";

const main = document.getElementById("docs");
const nav = document.getElementById("docs-nav");
const status = document.getElementById("docs-status");

/** Text with `code` spans as <code> elements: the document's descriptions use backticks. */
function prose(text) {
  return (text ?? "").split("`").map((part, index) => (index % 2 ? el("code", { text: part }) : part));
}

const schemaName = (ref) => ref.split("/").pop();
const anchor = (...parts) => parts.join("-").replace(/[^A-Za-z0-9_-]/g, "_");

/** A schema's type in a few words, its named schemas as links to their sections. */
function typeOf(schema) {
  if (!schema) return ["any"];
  if (schema.$ref) return [el("a", { href: `#schema-${anchor(schemaName(schema.$ref))}`, text: schemaName(schema.$ref) })];
  for (const key of ["oneOf", "anyOf"]) {
    if (schema[key]) return schema[key].flatMap((option, index) => (index ? [" or ", ...typeOf(option)] : typeOf(option)));
  }
  if (schema.enum) return [schema.enum.map((value) => JSON.stringify(value)).join(" | ")];
  if (schema.type === "array") return ["array of ", ...typeOf(schema.items)];
  const type = Array.isArray(schema.type) ? schema.type.join(" or ") : (schema.type ?? "any");
  const limits = [
    schema.format,
    schema.minimum !== undefined ? `≥ ${schema.minimum}` : null,
    schema.maximum !== undefined ? `≤ ${schema.maximum}` : null,
    schema.minLength !== undefined ? `length ≥ ${schema.minLength}` : null,
    schema.maxLength !== undefined ? `length ≤ ${schema.maxLength}` : null,
    schema.default !== undefined ? `default ${JSON.stringify(schema.default)}` : null,
  ].filter(Boolean);
  return [limits.length ? `${type} (${limits.join(", ")})` : type];
}

function table(headings, rows) {
  return el(
    "table",
    { class: "docs-table" },
    el("thead", {}, el("tr", {}, ...headings.map((heading) => el("th", { scope: "col", text: heading })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((cell) => el("td", {}, ...[cell].flat()))))),
  );
}

/** The properties of an object schema, or its type when it has none. */
function schemaBody(schema) {
  if (!schema?.properties) return el("p", {}, "Type: ", ...typeOf(schema));
  const required = new Set(schema.required ?? []);
  return table(
    ["field", "type", "", "description"],
    Object.entries(schema.properties).map(([name, property]) => [
      el("code", { text: name }), typeOf(property), required.has(name) ? "required" : "", prose(property.description),
    ]),
  );
}

function content(body) {
  return Object.entries(body?.content ?? {}).map(([type, { schema }]) =>
    el("p", { class: "docs-content" }, el("code", { text: type }), " ", ...typeOf(schema)),
  );
}

function security(operation, spec) {
  const schemes = (operation.security ?? spec.security ?? []).flatMap((requirement) => Object.keys(requirement));
  if (!schemes.length) return el("p", { class: "docs-auth" }, "Public: no session needed.");
  const names = { bearerAuth: "a bearer token", cookieAuth: "the session cookie", metricsToken: "the metrics token" };
  return el("p", { class: "docs-auth" }, `Needs ${schemes.map((scheme) => names[scheme] ?? scheme).join(" or ")}.`);
}

function operationSection(path, method, operation, spec) {
  const id = `op-${anchor(method, path)}`;
  const parameters = operation.parameters ?? [];
  return el(
    "section",
    { class: "docs-operation card", id },
    el(
      "h3",
      {},
      el("span", { class: `docs-method ${method}`, text: method.toUpperCase() }),
      " ",
      el("code", { text: path }),
    ),
    el("p", { class: "docs-summary", text: operation.summary }),
    operation.description ? el("p", {}, ...prose(operation.description)) : null,
    security(operation, spec),
    parameters.length
      ? table(
          ["parameter", "in", "type", "description"],
          parameters.map((parameter) => [
            el("code", { text: parameter.name }),
            `${parameter.in}${parameter.required ? ", required" : ""}`,
            typeOf(parameter.schema),
            prose(parameter.description),
          ]),
        )
      : null,
    operation.requestBody ? el("h4", { text: "Request body" }) : null,
    ...content(operation.requestBody),
    el("h4", { text: "Responses" }),
    table(
      ["status", "description", "body"],
      Object.entries(operation.responses ?? {}).map(([code, response]) => [
        el("code", { text: code }), prose(response.description), content(response),
      ]),
    ),
  );
}

function render(spec) {
  document.title = `${spec.info.title} API reference · Chat`;
  document.getElementById("docs-title").textContent = `${spec.info.title} API`;
  const byTag = new Map();
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const tag = operation.tags?.[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, operation]);
    }
  }
  const sections = [
    el("p", { class: "docs-intro" }, ...prose(spec.info.description)),
    el("p", { class: "docs-version", text: `Version ${spec.info.version}, OpenAPI ${spec.openapi}.` }),
  ];
  const links = [];
  for (const [tag, operations] of byTag) {
    sections.push(el("h2", { id: `tag-${anchor(tag)}`, text: tag }));
    links.push(el("h2", {}, el("a", { href: `#tag-${anchor(tag)}`, text: tag })));
    const list = el("ul", {});
    for (const [path, method, operation] of operations) {
      sections.push(operationSection(path, method, operation, spec));
      list.append(el("li", {}, el("a", { href: `#op-${anchor(method, path)}` }, `${method.toUpperCase()} ${path}`)));
    }
    links.push(list);
  }
  sections.push(el("h2", { id: "schemas", text: "Schemas" }));
  links.push(el("h2", {}, el("a", { href: "#schemas", text: "Schemas" })));
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    sections.push(
      el(
        "section",
        { class: "docs-schema card", id: `schema-${anchor(name)}` },
        el("h3", {}, el("code", { text: name })),
        schema.description ? el("p", {}, ...prose(schema.description)) : null,
        schemaBody(schema),
      ),
    );
  }
  main.replaceChildren(...sections);
  nav.replaceChildren(...links);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

try {
  render(await api("GET", "/openapi.json"));
} catch (error) {
  status.textContent = `The OpenAPI document could not be loaded: ${error.message}`;
}
