#!/usr/bin/env node
/** x86run: see ../cli.ts. */
import { main } from "../cli.ts";

process.exitCode = main(process.argv.slice(2));
