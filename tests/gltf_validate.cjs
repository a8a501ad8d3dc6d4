// Validate a .glb with the Khronos glTF validator; print the report's issue counts as JSON.
const fs = require("fs");
const path = require("path");
const validator = require(path.resolve(process.argv[2], "gltf-validator"));
const data = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(data).then((report) => {
  const issues = report.issues;
  console.log(JSON.stringify({ errors: issues.numErrors, warnings: issues.numWarnings,
                               messages: issues.messages.slice(0, 20) }));
}).catch((err) => { console.error(String(err)); process.exit(1); });
