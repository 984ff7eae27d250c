// npm pack leaves symlinks out, and notifd.js is one (its one copy lives
// in web/client/, where notifd serves it to the web client): `prepack`
// replaces the link by a copy of the file, `postpack` puts the link back.
//   node scripts/pack-link.mjs copy|link
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const file = path.join(dir, "notifd.js");
const target = "../../web/client/notifd.js";
const mode = process.argv[2];
if (mode === "copy") {
  if (fs.lstatSync(file).isSymbolicLink()) {
    const text = fs.readFileSync(file);
    fs.unlinkSync(file);
    fs.writeFileSync(file, text);
  }
} else if (mode === "link") {
  if (!fs.lstatSync(file).isSymbolicLink()) {
    fs.unlinkSync(file);
    fs.symlinkSync(target, file);
  }
} else {
  console.error("usage: node scripts/pack-link.mjs copy|link");
  process.exit(2);
}
