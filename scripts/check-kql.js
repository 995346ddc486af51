#!/usr/bin/env node
// Offline check of every KQL query in an Azure Monitor workbook against the contract's
// TrailVault_CL schema, with Microsoft's Kusto language service (@kusto/language-service-next).
// Usage: node scripts/check-kql.js WORKBOOK.json   -> exit 0 when every query analyses clean.
const path = require('path');
const fs = require('fs');
const pkg = path.join(__dirname, '..', 'tools', 'emulators', 'node_modules', '@kusto', 'language-service-next');
require(path.join(pkg, 'bridge.min.js'));
require(path.join(pkg, 'Kusto.Language.Bridge.min.js'));
const S = Kusto.Language.Symbols;

// ../shared/contract.md, "Records".
const schema = '(TimeGenerated:datetime, RecordId:string, RecordType:string, RunId:string, Source:string, ' +
  'Account:string, Region:string, Status:string, FilesCopied:long, BytesCopied:long, FilesSkipped:long, ' +
  'FilesFailed:long, BackupGapSeconds:long, NewestFileTime:datetime, DurationSeconds:real, AwsHealth:string, ' +
  'Message:string, Details:dynamic)';
const table = new S.TableSymbol.$ctor7('TrailVault_CL', schema, 'trailvault records');
const globals = Kusto.Language.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor('workspace', [table]));

// Workbook placeholders stand for whole predicates or values: replace them before analysis.
function concrete(query) {
  return query
    .replace(/\{TimeRange\}/g, '> ago(1d)')
    .replace(/\{TimeRange:start\}/g, 'datetime(2026-11-25T00:00:00Z)')
    .replace(/\{TimeRange:end\}/g, 'datetime(2026-11-26T00:00:00Z)')
    .replace(/\{TimeRange:grain\}/g, '1h')
    .replace(/\{[A-Za-z]+(:[A-Za-z]+)?\}/g, "'sample'");
}

function queries(items, out) {
  for (const item of items || []) {
    if (item.type === 3) out.push({ name: item.name, query: item.content.query });
    if (item.type === 12) queries(item.content.items, out);
  }
  return out;
}

const file = process.argv[2];
const workbook = JSON.parse(fs.readFileSync(file, 'utf8'));
if (workbook.version !== 'Notebook/1.0') {
  console.error(`${file}: not a workbook (version ${workbook.version})`);
  process.exit(2);
}
let errors = 0;
const found = queries(workbook.items, []);
for (const { name, query } of found) {
  const diagnostics = Kusto.Language.KustoCode.ParseAndAnalyze(concrete(query), globals).GetDiagnostics();
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (String(d.Severity) === 'Error') {
      errors++;
      console.error(`${name}: ${d.Code} ${d.Message}`);
    }
  }
}
console.log(`${found.length} queries checked, ${errors} errors`);
process.exit(errors === 0 && found.length > 0 ? 0 : 1);
