// The API reference: renders /openapi.json (OpenAPI 3.1) for people. Self-contained, no
// dependencies; text from the document is always set as text, never parsed as HTML.
"use strict";

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Inline `code` spans in descriptions; the rest stays plain text.
function prose(text, cls = "prose") {
  const node = el("p", { class: cls });
  String(text || "").split(/(`[^`]+`)/).forEach((part) => {
    node.append(part.startsWith("`") && part.endsWith("`") && part.length > 1
      ? el("code", {}, part.slice(1, -1)) : document.createTextNode(part));
  });
  return node;
}

function resolve(doc, schema) {
  let found = schema;
  const seen = new Set();
  while (found && found.$ref && !seen.has(found.$ref)) {
    seen.add(found.$ref);
    const path = found.$ref.replace(/^#\//, "").split("/");
    const target = path.reduce((node, key) => (node ? node[key] : undefined), doc);
    found = target ? { ...target, ...Object.fromEntries(Object.entries(found).filter(([k]) => k !== "$ref")) } : {};
  }
  return found || {};
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

function typeLabel(schema) {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (type === "array" && schema.items) return `array of ${refName(schema.items) || typeLabel(schema.items)}`;
  return type || (schema.oneOf ? "one of" : schema.anyOf ? "any of" : schema.allOf ? "all of" : "any");
}

function constraints(schema) {
  const parts = [];
  const add = (key, label) => { if (schema[key] !== undefined) parts.push(`${label} ${schema[key]}`); };
  add("minLength", "min length"); add("maxLength", "max length");
  add("minimum", "≥"); add("maximum", "≤"); add("minItems", "min items"); add("maxItems", "max items");
  if (schema.pattern) parts.push(`pattern ${schema.pattern}`);
  if (schema.format) parts.push(`format ${schema.format}`);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  if (schema.contentSchema) parts.push(`JSON: ${refName(schema.contentSchema) || "object"}`);
  return parts.join(", ");
}

// A schema as a nested list: properties with their types, constraints and descriptions.
function schemaTree(doc, raw, depth = 0) {
  const schema = resolve(doc, raw);
  const box = el("div", { class: "schema" });
  const head = el("div", {}, el("span", { class: "type" }, refName(raw) ? `${refName(raw)}: ` : "", typeLabel(schema)));
  const limits = constraints(schema);
  if (limits) head.append(el("span", { class: "constraint" }, limits));
  box.append(head);
  if (schema.description && depth === 0) box.append(prose(schema.description, "summary"));
  if (depth > 6) return box;
  const list = el("ul");
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const resolved = resolve(doc, prop);
    const item = el("li", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req" }, "required") : null,
      " ", el("span", { class: "type" }, refName(prop) || typeLabel(resolved)));
    const limits = constraints(resolved);
    if (limits) item.append(el("span", { class: "constraint" }, limits));
    if (resolved.description) item.append(prose(resolved.description, "summary"));
    if (resolved.properties || resolved.oneOf || resolved.anyOf || resolved.allOf
        || (resolved.items && resolve(doc, resolved.items).properties)) {
      if (!refName(prop) || depth < 1) item.append(schemaTree(doc, resolved.items && !resolved.properties ? resolved.items : prop, depth + 1));
    }
    list.append(item);
  }
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    (schema[key] || []).forEach((option, index) => {
      const label = key === "allOf" ? "and" : `option ${index + 1}`;
      const resolved = resolve(doc, option);
      list.append(el("li", {}, el("span", { class: "badge" }, label),
        resolved.description ? prose(resolved.description, "summary") : null, schemaTree(doc, option, depth + 1)));
    });
  }
  if (list.childElementCount) box.append(list);
  return box;
}

function securityOf(doc, operation) {
  const requirements = operation.security || doc.security || [];
  if (!requirements.length) return el("p", {}, "No token needed.");
  const optional = requirements.some((r) => Object.keys(r).length === 0);
  const list = el("ul");
  for (const requirement of requirements) {
    for (const [name, scopes] of Object.entries(requirement)) {
      const scheme = (doc.components.securitySchemes || {})[name] || {};
      const where = scheme.type === "http" ? `Authorization: Bearer (${scheme.bearerFormat || scheme.scheme})`
        : `${scheme.in} ${scheme.name}`;
      list.append(el("li", {}, el("code", {}, where), scopes.length ? ` scope ${scopes.join(", ")}` : ""));
    }
  }
  return el("div", {}, el("p", {}, optional ? "Any of these, or none (AUTH_MODE=off):" : "Any one of:"), list);
}

function parameters(doc, operation) {
  const rows = (operation.parameters || []).map((raw) => {
    const p = resolve(doc, raw);
    const schema = resolve(doc, p.schema || {});
    return el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, "required") : null),
      el("td", {}, p.in), el("td", {}, el("span", { class: "type" }, typeLabel(schema)), " ",
        el("span", { class: "constraint" }, constraints(schema))),
      el("td", {}, prose(p.description || schema.description || "", "")));
  });
  if (!rows.length) return null;
  return el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "")), rows);
}

// The one error shape, with the codes this answer can carry: `allOf: [Error, {code enum}]`.
function errorShape(schema) {
  const parts = schema.allOf || [];
  if (parts.length !== 2 || refName(parts[0]) !== "Error") return null;
  const codes = (((parts[1].properties || {}).error || {}).properties || {}).code || {};
  return el("div", { class: "schema" }, el("span", { class: "type" }, "Error: "),
    el("code", {}, '{"error": {"code", "message"}}'), " code ",
    ...(codes.enum || []).map((code) => el("code", { class: "code" }, code)));
}

function content(doc, body) {
  return Object.entries(body.content || {}).map(([media, value]) =>
    el("div", {}, el("span", { class: "badge" }, media),
      value.schema ? errorShape(value.schema) || schemaTree(doc, value.schema) : null));
}

function responses(doc, operation) {
  const table = el("table");
  for (const [status, raw] of Object.entries(operation.responses || {})) {
    const response = resolve(doc, raw);
    const cell = el("td", {}, prose(response.description || "", ""), content(doc, response));
    for (const [name, header] of Object.entries(response.headers || {})) {
      cell.append(el("div", {}, el("span", { class: "badge" }, "header"), el("code", {}, name), " ", header.description || ""));
    }
    for (const [name, link] of Object.entries(response.links || {})) {
      cell.append(el("div", {}, el("span", { class: "badge" }, "link"), `${name} → `,
        el("a", { href: `#op-${link.operationId}` }, link.operationId), " ",
        el("code", {}, Object.entries(link.parameters || {}).map(([k, v]) => `${k} = ${v}`).join(", "))));
    }
    table.append(el("tr", {}, el("td", { class: `status s${status[0]}` }, status), cell));
  }
  return table;
}

function operationBlock(doc, path, method, operation) {
  const id = `op-${operation.operationId || `${method}-${path}`}`;
  const body = el("div", { class: "op-body" });
  if (operation.description) body.append(prose(operation.description));
  body.append(el("h4", {}, "Access"), securityOf(doc, operation));
  const params = parameters(doc, operation);
  if (params) body.append(el("h4", {}, "Parameters"), params);
  if (operation.requestBody) body.append(el("h4", {}, "Request body"), ...content(doc, resolve(doc, operation.requestBody)));
  body.append(el("h4", {}, "Responses"), responses(doc, operation));
  return el("details", { class: "op", id },
    el("summary", {}, el("span", { class: `method m-${method}` }, method), el("span", { class: "path" }, path),
      el("span", { class: "summary" }, operation.summary || "")), body);
}

function render(doc) {
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  main.replaceChildren(el("h1", {}, doc.info.title, " ", el("span", { class: "badge" }, `v${doc.info.version}`),
    el("span", { class: "badge" }, `OpenAPI ${doc.openapi}`)));
  if (doc.info.summary) main.append(el("p", { class: "summary" }, doc.info.summary));
  main.append(prose(doc.info.description), el("p", {}, el("a", { href: "openapi.json" }, "openapi.json")));
  const tags = (doc.tags || []).map((t) => t.name);
  const byTag = new Map(tags.map((t) => [t, []]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS.filter((m) => item[m])) {
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, item[method]]);
    }
  }
  nav.replaceChildren(el("a", { href: "#" }, el("strong", {}, doc.info.title)));
  for (const [tag, operations] of byTag) {
    if (!operations.length) continue;
    const about = (doc.tags || []).find((t) => t.name === tag);
    main.append(el("h2", { class: "tag", id: `tag-${tag}` }, tag), about ? prose(about.description, "summary") : null);
    nav.append(el("h2", {}, tag));
    for (const [path, method, operation] of operations) {
      const block = operationBlock(doc, path, method, operation);
      main.append(block);
      const link = el("a", { href: `#${block.id}` }, el("span", { class: `method m-${method}` }, method), " ", path);
      link.addEventListener("click", () => { block.open = true; });
      nav.append(link);
    }
  }
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
  document.body.dataset.rendered = String(main.querySelectorAll("details.op").length);
}

fetch("openapi.json", { headers: { accept: "application/json" } })
  .then((response) => {
    if (!response.ok) throw new Error(`openapi.json answered ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("status").textContent = `Could not load the document: ${error.message}`;
  });
