# secrets.sh: the [secrets] table of tgfront's config from the image's
# environment, shared by /init (at start) and /usr/bin/reload (docker exec
# NAME reload). Sourced by busybox sh; defines secrets_table only.
#
#   SECRETS="alice:ee...,bob:ee..."     named secrets, comma-separated
#   SECRETS_FILE=/run/secrets/tgfront   a mounted file: one name:secret a
#                                       line (commas work too); blank lines
#                                       and lines starting with # are skipped
#
# Names are 1-32 letters, digits, '_' or '-' (they label the metrics);
# secrets are hex or base64 text. tgfront itself checks each secret and
# that all are for DOMAIN when the rendered config is validated.

# secrets_table: prints the table (nothing when neither variable is set),
# or one "error: ..." line on stderr and returns 1.
secrets_table() {
    list=${SECRETS:-}
    if [ -n "${SECRETS_FILE:-}" ]; then
        [ -r "$SECRETS_FILE" ] || { echo "error: SECRETS_FILE=$SECRETS_FILE is not a readable file" >&2; return 1; }
        list="$list
$(cat "$SECRETS_FILE")"
    fi
    printf '%s\n' "$list" | tr ',' '\n' | awk '
        { sub(/\r$/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
        $0 == "" || /^#/ { next }
        {
            i = index($0, ":")
            name = substr($0, 1, i - 1); secret = substr($0, i + 1)
            gsub(/[ \t]+$/, "", name); gsub(/^[ \t]+/, "", secret)
            if (i == 0 || name !~ /^[A-Za-z0-9_-]+$/ || length(name) > 32) {
                print "error: SECRETS: \"" (i ? name : $0) "\" is not name:secret with a name of 1-32 letters, digits, _ or -" > "/dev/stderr"
                bad = 1; exit 1
            }
            if (secret !~ /^[A-Za-z0-9+\/=_-]+$/) {
                print "error: SECRETS: the secret of \"" name "\" is not hex or base64 text" > "/dev/stderr"
                bad = 1; exit 1
            }
            if (name in seen) {
                print "error: SECRETS: the name \"" name "\" is given twice" > "/dev/stderr"
                bad = 1; exit 1
            }
            seen[name] = 1; out[++n] = name " = \"" secret "\""
        }
        END {
            if (bad) exit 1
            if (n == 0) exit 0
            print "[secrets]"
            for (k = 1; k <= n; k++) print out[k]
        }'
}
