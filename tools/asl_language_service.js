#!/usr/bin/env node
// Validates a state machine definition with npm `amazon-states-language-service` (the language service
// behind the AWS Toolkit's ASL editor) and prints its diagnostics as JSON, one object per diagnostic:
//   [{"path": "$.States.X.Field", "message": "...", "severity": "error"|"warning"|..., "source": "..."}]
// The diagnostic's range is mapped to the JSON path of the node it starts at (a property key maps to that
// property). Exit 0 whether or not there are diagnostics; exit 2 when the file cannot be read or parsed.
//
// Usage: node tools/asl_language_service.js <definition.json>
'use strict';

const fs = require('fs');
const { getLanguageService, TextDocument, DiagnosticSeverity } = require('amazon-states-language-service');

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information',
  [DiagnosticSeverity.Hint]: 'hint',
};

// The JSON path ("$.States.A.Retry[0]") of an AST node: a key string maps to its property.
function jsonPath(node) {
  const parts = [];
  for (let child = node, parent = node && node.parent; parent; child = parent, parent = parent.parent) {
    if (parent.type === 'property') {
      if (child === parent.valueNode || child === parent.keyNode) parts.unshift(`.${parent.keyNode.value}`);
    } else if (parent.type === 'array') {
      parts.unshift(`[${parent.items.indexOf(child)}]`);
    }
  }
  return '$' + parts.join('');
}

async function main() {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: asl_language_service.js <definition.json>\n');
    return 2;
  }
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
    JSON.parse(text);
  } catch (error) {
    process.stderr.write(`${file}: ${error.message}\n`);
    return 2;
  }
  const service = getLanguageService({});
  const document = TextDocument.create(`file://${file}`, 'json', 0, text);
  const parsed = service.parseJSONDocument(document);
  const diagnostics = await service.doValidation(document, parsed);
  const found = diagnostics.map((d) => {
    const offset = document.offsetAt(d.range.start);
    // Offsets that fall on punctuation (a ':' or ',') find the enclosing node, which is what we want.
    const node = parsed.getNodeFromOffset(offset, true);
    return {
      path: jsonPath(node),
      message: d.message,
      severity: SEVERITY[d.severity] || String(d.severity),
      source: d.source || 'asl',
    };
  });
  process.stdout.write(JSON.stringify(found, null, 1) + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(2);
  },
);
