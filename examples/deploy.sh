#!/usr/bin/env bash
# A pretend deploy that uses every stepflow marker and parameter syntax.
# Try it: stepflow run -- bash examples/deploy.sh
set -euo pipefail
out=$(mktemp -d)

echo "META:owner:ops"                      # no step running yet: metadata on the run
echo "STEP_START:env_check[stop_on_error=true][duration=1]"
echo "checking tools"; command -v bash
echo "STEP_COMPLETE:env_check"

echo "STEP_START:build{duration:2}"
echo "META:DESCRIPTION:compile and bundle"
for i in 1 2 3; do echo "compiling module $i"; sleep 0.2; done
echo "warning: 1 deprecated call" >&2
echo "<html><body>build ok</body></html>" > "$out/report.html"
echo "ARTIFACT:$out/report.html:Build report"
echo "STEP_COMPLETE:build"

echo "STEP_START:lint --stop_on_error=false --duration=1"
echo "META:ESTIMATED_DURATION:1"
echo "style: 2 long lines"
echo "STEP_ERROR:lint found 2 problems (optional step, the run goes on)"

echo "STEP_START:[beta] smoke test[duration=1]"   # brackets without k=v are part of the name
echo "GET /health 200"; sleep 0.3
echo "STEP_COMPLETE:[beta] smoke test"

echo "STEP_START:publish[stop_on_error=true,duration=1]"
printf 'release notes\n' > "$out/NOTES.txt"
echo "ARTIFACT:$out/NOTES.txt"
echo "published"
# publish is still running when the script exits 0, so it completes
