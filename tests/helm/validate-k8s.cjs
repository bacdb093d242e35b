#!/usr/bin/env node
// Validates rendered Kubernetes manifests, as an API server would before
// accepting them, without a cluster:
//
//  1. each YAML document parses (yaml 2, YAML 1.2 core schema, duplicate keys
//     are errors);
//  2. its apiVersion/kind is a known type: the Kubernetes OpenAPI schemas of
//     kubernetes-models (first-party types) and
//     @kubernetes-models/prometheus-operator (PodMonitor, ServiceMonitor,
//     PrometheusRule CRDs);
//  3. it validates against that JSON schema (types, enums, required fields);
//  4. it has no field the schema does not know (kubectl's default
//     --validate=strict rejects those): the compiled validators do not check
//     unknown fields, so every object is wrapped in a Proxy that records
//     which properties the validator read; a property never read is unknown,
//     unless the validator enumerated the object (a map: labels, limits...);
//  5. a few of the API server's own rules that schemas do not carry: object,
//     container, volume and port names; label keys and values; unique
//     container and port names in a pod; volume mounts that name a volume.
//
// Usage: node validate-k8s.cjs FILE.yaml...   (exit status 1 on any error)
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

// --- 2. finding the validator of a type ---------------------------------

const MODEL_PACKAGES = [
  { test: (group) => group === "monitoring.coreos.com", pkg: "@kubernetes-models/prometheus-operator" },
  { test: () => true, pkg: "kubernetes-models" },
];

const validators = new Map();

function validatorFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (validators.has(key)) return validators.get(key);
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const pkg = MODEL_PACKAGES.find((p) => p.test(group)).pkg;
  let validate = null;
  try {
    const modelFile = require.resolve(`${pkg}/${apiVersion}/${kind}`);
    const text = fs.readFileSync(modelFile, "utf8");
    const m = text.match(/require\("(\.\.\/[^"]*_schemas\/[^"]+\.js)"\)/);
    if (m) validate = require(path.resolve(path.dirname(modelFile), m[1])).validate;
  } catch (e) {
    validate = null;
  }
  validators.set(key, validate);
  return validate;
}

// --- 4. unknown fields ------------------------------------------------------

function track(value, where, records) {
  if (value === null || typeof value !== "object") return value;
  const rec = { where, obj: value, read: new Set(), enumerated: false, isArray: Array.isArray(value) };
  records.push(rec);
  const target = Array.isArray(value)
    ? value.map((x, i) => track(x, `${where}/${i}`, records))
    : Object.fromEntries(Object.entries(value).map(([k, x]) => [k, track(x, `${where}/${k}`, records)]));
  return new Proxy(target, {
    get(t, k, r) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
    getOwnPropertyDescriptor(t, k) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.getOwnPropertyDescriptor(t, k);
    },
  });
}

// --- 5. API server rules ------------------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function checkLabels(labels, where, errors) {
  for (const [k, v] of Object.entries(labels || {})) {
    const parts = k.split("/");
    const name = parts.pop();
    const prefix = parts.join("/");
    if (parts.length > 1 || (prefix && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))))
      errors.push(`${where}: label key ${JSON.stringify(k)}: bad prefix`);
    if (name.length > 63 || !LABEL_NAME.test(name)) errors.push(`${where}: label key ${JSON.stringify(k)}: bad name`);
    if (typeof v !== "string") errors.push(`${where}: label ${k}: value must be a string`);
    else if (v.length > 63 || !LABEL_VALUE.test(v)) errors.push(`${where}: label ${k}: bad value ${JSON.stringify(v)}`);
  }
}

function checkPodSpec(spec, where, errors) {
  if (!spec) return;
  const volumes = new Set();
  for (const v of spec.volumes || []) {
    if (!DNS1123_LABEL.test(v.name) || v.name.length > 63) errors.push(`${where}/volumes: bad volume name ${v.name}`);
    if (volumes.has(v.name)) errors.push(`${where}/volumes: duplicate volume ${v.name}`);
    volumes.add(v.name);
  }
  const containerNames = new Set();
  const portNames = new Set();
  const all = [
    ...(spec.initContainers || []).map((c) => ["initContainers", c]),
    ...(spec.containers || []).map((c) => ["containers", c]),
  ];
  if (!(spec.containers || []).length) errors.push(`${where}: a pod needs at least one container`);
  for (const [list, c] of all) {
    const cw = `${where}/${list}/${c.name}`;
    if (!DNS1123_LABEL.test(c.name) || c.name.length > 63) errors.push(`${cw}: bad container name`);
    if (containerNames.has(c.name)) errors.push(`${cw}: duplicate container name`);
    containerNames.add(c.name);
    if (c.restartPolicy !== undefined && (list !== "initContainers" || c.restartPolicy !== "Always"))
      errors.push(`${cw}: restartPolicy is only allowed on init containers, and only "Always"`);
    if (list === "initContainers" && c.restartPolicy !== "Always") {
      for (const p of ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle"])
        if (c[p]) errors.push(`${cw}: ${p} is not allowed on an init container unless restartPolicy is Always`);
    }
    for (const p of c.ports || []) {
      if (p.name !== undefined) {
        if (p.name.length > 15 || !IANA_SVC_NAME.test(p.name) || !/[a-z]/.test(p.name) || p.name.includes("--"))
          errors.push(`${cw}: bad port name ${p.name} (IANA_SVC_NAME, at most 15 characters)`);
        if (portNames.has(p.name)) errors.push(`${cw}: duplicate port name ${p.name} in the pod`);
        portNames.add(p.name);
      }
    }
    const mounts = new Set();
    for (const m of c.volumeMounts || []) {
      if (!volumes.has(m.name)) errors.push(`${cw}: volumeMount ${m.name} names no volume`);
      if (mounts.has(m.mountPath)) errors.push(`${cw}: two mounts at ${m.mountPath}`);
      mounts.add(m.mountPath);
      if (m.subPath && m.subPathExpr) errors.push(`${cw}: subPath and subPathExpr are exclusive`);
    }
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      const pr = c[probe];
      if (pr && pr.httpGet && typeof pr.httpGet.port === "string" && !(c.ports || []).some((p) => p.name === pr.httpGet.port))
        errors.push(`${cw}: ${probe} names port ${pr.httpGet.port}, which the container does not have`);
    }
  }
}

function apiServerRules(doc, where, errors) {
  const md = doc.metadata || {};
  if (!md.name) errors.push(`${where}: metadata.name is required`);
  else if (md.name.length > 253 || !DNS1123_SUBDOMAIN.test(md.name)) errors.push(`${where}: bad metadata.name ${md.name}`);
  else if (["Service", "Deployment", "DaemonSet", "StatefulSet"].includes(doc.kind) && (md.name.length > 63 || !DNS1123_LABEL.test(md.name)))
    errors.push(`${where}: a ${doc.kind}'s name must be a DNS label (at most 63 characters)`);
  checkLabels(md.labels, `${where}/metadata/labels`, errors);
  for (const [k, v] of Object.entries(md.annotations || {}))
    if (typeof v !== "string") errors.push(`${where}: annotation ${k}: value must be a string`);
  if (doc.kind === "ConfigMap") {
    for (const k of Object.keys(doc.data || {}))
      if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) errors.push(`${where}: bad ConfigMap key ${k}`);
    const size = Buffer.byteLength(JSON.stringify(doc.data || {}));
    if (size > 1024 * 1024) errors.push(`${where}: ConfigMap data is over 1 MiB (${size} bytes)`);
  }
  const tpl = doc.spec && doc.spec.template;
  if (tpl) {
    checkLabels((tpl.metadata || {}).labels, `${where}/spec/template/metadata/labels`, errors);
    const sel = (doc.spec.selector || {}).matchLabels || {};
    for (const [k, v] of Object.entries(sel))
      if (((tpl.metadata || {}).labels || {})[k] !== v) errors.push(`${where}: selector ${k}=${v} does not match the pod template's labels`);
    checkPodSpec(tpl.spec, `${where}/spec/template/spec`, errors);
  }
  if (doc.kind === "Pod") checkPodSpec(doc.spec, `${where}/spec`, errors);
}

// --- main ---------------------------------------------------------------------

function validateFile(file) {
  const errors = [];
  let count = 0;
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  docs.forEach((d, i) => {
    const at = `${file}: document ${i + 1}`;
    for (const e of d.errors) errors.push(`${at}: YAML: ${e.message}`);
    for (const w of d.warnings) errors.push(`${at}: YAML warning: ${w.message}`);
    if (d.errors.length) return;
    const doc = d.toJS();
    if (doc === null || doc === undefined) return; // an empty document
    count++;
    if (typeof doc !== "object" || Array.isArray(doc)) {
      errors.push(`${at}: not a Kubernetes object`);
      return;
    }
    const where = `${at} (${doc.kind} ${(doc.metadata || {}).name})`;
    if (!doc.apiVersion || !doc.kind) {
      errors.push(`${where}: apiVersion and kind are required`);
      return;
    }
    const validate = validatorFor(doc.apiVersion, doc.kind);
    if (!validate) {
      errors.push(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      return;
    }
    const records = [];
    const ok = validate(track(doc, "", records));
    if (!ok) {
      for (const e of validate.errors || [])
        errors.push(`${where}: ${e.instancePath || "/"} ${e.message || e.keyword} ${e.params ? JSON.stringify(e.params) : ""}`);
    }
    for (const r of records) {
      if (r.isArray || r.enumerated) continue;
      for (const k of Object.keys(r.obj))
        if (!r.read.has(k)) errors.push(`${where}: unknown field ${r.where}/${k}`);
    }
    apiServerRules(doc, where, errors);
  });
  return { errors, count };
}

function main() {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error("usage: node validate-k8s.cjs FILE.yaml...");
    process.exit(2);
  }
  let failed = false;
  for (const f of files) {
    const { errors, count } = validateFile(f);
    if (errors.length) {
      failed = true;
      for (const e of errors) console.log(`ERROR ${e}`);
    } else {
      console.log(`ok ${f}: ${count} objects`);
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
