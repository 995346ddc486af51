#!/usr/bin/env node
// Offline check of KQL against the contract's TrailVault_CL schema with Microsoft's Kusto
// language service (@kusto/language-service-next).
//
// Usage: node scripts/check-kql.js FILE...   (FILE "-" reads standard input)
// Each FILE is either
//   - an Azure Monitor workbook (version "Notebook/1.0"): every query item (type 3) is checked;
//   - a query list {"queries": [{"name", "query", "input"?}]}, such as the KQL that
//     scripts/check-terraform.py pulls out of the Terraform alert rules and the DCR. With
//     "input": "source" the query is a DCR transform, run over a table named `source` that
//     has the stream's (the contract's) columns.
// Exit 0 when every query analyses clean; 1 on any error-severity diagnostic (or no query);
// 2 on a file that is neither.
// `--print-schema` prints the schema below as JSON, for the Terraform check to compare.
const path = require('path');
const fs = require('fs');

// ../shared/contract.md, "Records", with version 3's TargetSeconds (SyncRun records).
const COLUMNS = [
  ['TimeGenerated', 'datetime'], ['RecordId', 'string'], ['RecordType', 'string'], ['RunId', 'string'],
  ['Source', 'string'], ['Account', 'string'], ['Region', 'string'], ['Status', 'string'],
  ['FilesCopied', 'long'], ['BytesCopied', 'long'], ['FilesSkipped', 'long'], ['FilesFailed', 'long'],
  ['BackupGapSeconds', 'long'], ['TargetSeconds', 'long'], ['NewestFileTime', 'datetime'],
  ['DurationSeconds', 'real'], ['AwsHealth', 'string'], ['Message', 'string'], ['Details', 'dynamic'],
];

if (process.argv[2] === '--print-schema') {
  console.log(JSON.stringify(COLUMNS));
  process.exit(0);
}

const pkg = path.join(__dirname, '..', 'tools', 'emulators', 'node_modules', '@kusto', 'language-service-next');
require(path.join(pkg, 'bridge.min.js'));
require(path.join(pkg, 'Kusto.Language.Bridge.min.js'));
const S = Kusto.Language.Symbols;

const schema = '(' + COLUMNS.map(([n, t]) => `${n}:${t}`).join(', ') + ')';
const table = new S.TableSymbol.$ctor7('TrailVault_CL', schema, 'trailvault records');
const workspace = Kusto.Language.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor('workspace', [table]));
// A DCR transform sees the incoming stream as the table `source`.
const stream = new S.TableSymbol.$ctor7('source', schema, 'Custom-TrailVault_CL stream');
const transform = Kusto.Language.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor('dcr', [stream]));

// Workbook placeholders stand for whole predicates or values: replace them before analysis.
function concrete(query) {
  return query
    .replace(/\{TimeRange\}/g, '> ago(1d)')
    .replace(/\{TimeRange:start\}/g, 'datetime(2026-11-25T00:00:00Z)')
    .replace(/\{TimeRange:end\}/g, 'datetime(2026-11-26T00:00:00Z)')
    .replace(/\{TimeRange:grain\}/g, '1h')
    .replace(/\{[A-Za-z]+(:[A-Za-z]+)?\}/g, "'sample'");
}

function workbookQueries(items, out) {
  for (const item of items || []) {
    if (item.type === 3) out.push({ name: item.name, query: item.content.query });
    if (item.type === 12) workbookQueries(item.content.items, out);
  }
  return out;
}

function load(file) {
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  const doc = JSON.parse(text);
  if (doc.version === 'Notebook/1.0') return workbookQueries(doc.items, []);
  if (Array.isArray(doc.queries)) return doc.queries;
  console.error(`${file}: neither a workbook (version ${doc.version}) nor a {"queries": [...]} list`);
  process.exit(2);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: check-kql.js FILE... (a workbook JSON or a {"queries": [...]} list; - for stdin)');
  process.exit(2);
}
let errors = 0;
let checked = 0;
for (const file of files) {
  for (const { name, query, input } of load(file)) {
    if (typeof query !== 'string' || query.trim() === '') {
      errors++;
      console.error(`${name}: empty query`);
      continue;
    }
    const globals = input === 'source' ? transform : workspace;
    const diagnostics = Kusto.Language.KustoCode.ParseAndAnalyze(concrete(query), globals).GetDiagnostics();
    checked++;
    for (let i = 0; i < diagnostics.Count; i++) {
      const d = diagnostics.getItem(i);
      if (String(d.Severity) === 'Error') {
        errors++;
        console.error(`${name}: ${d.Code} ${d.Message}`);
      }
    }
  }
}
console.log(`${checked} queries checked, ${errors} errors`);
process.exit(errors === 0 && checked > 0 ? 0 : 1);
