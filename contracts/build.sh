#!/bin/sh
# Rebuild contracts/TestToken.json (ABI and creation bytecode) from TestToken.sol with solc-js from
# node_modules (installed by `npm install`; it compiles offline). Usage: sh contracts/build.sh
set -eu
cd "$(dirname "$0")/.."
node - <<'JS'
const fs = require("fs");
const solc = require("solc");
const source = fs.readFileSync("contracts/TestToken.sol", "utf8");
const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { TestToken: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts["TestToken.sol"].TestToken;
const artifact = {
  contractName: "TestToken",
  compiler: `solc-js ${solc.version()}`,
  abi: contract.abi,
  bytecode: "0x" + contract.evm.bytecode.object,
};
fs.writeFileSync("contracts/TestToken.json", JSON.stringify(artifact, null, 2) + "\n");
console.log(`contracts/TestToken.json rebuilt with ${artifact.compiler}`);
JS
