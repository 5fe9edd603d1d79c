# secrets.sh: the [secrets] table of tgfront's config from the image's
# environment, shared by /init (at start) and /usr/bin/reload (docker exec
# NAME reload). Sourced by busybox sh; defines secrets_table only.
#
#   SECRETS="alice:ee...,bob:ee..."     named secrets, comma-separated
#   SECRETS_FILE=/run/secrets/tgfront   a mounted file: one name:secret a
#                                       line (commas work too); blank lines
#                                       and lines starting with # are skipped
#
# After name:secret, optional limits separated by spaces become its
# [secret-limits.NAME] table: max-connections=2 expires=2027-01-31T23:59:59Z
# quota=10gib quota-period=720h.
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
        function bad(msg) { print "error: SECRETS: " msg > "/dev/stderr"; failed = 1; exit 1 }
        { sub(/\r$/, "") }
        $1 == "" || $1 ~ /^#/ { next }
        {
            i = index($1, ":")
            name = substr($1, 1, i - 1); secret = substr($1, i + 1)
            if (i == 0 || name !~ /^[A-Za-z0-9_-]+$/ || length(name) > 32)
                bad("\"" $1 "\" is not name:secret with a name of 1-32 letters, digits, _ or -")
            if (secret !~ /^[A-Za-z0-9+\/=_-]+$/)
                bad("the secret of \"" name "\" is not hex or base64 text")
            if (name in seen)
                bad("the name \"" name "\" is given twice")
            seen[name] = 1; out[++n] = name " = \"" secret "\""
            for (f = 2; f <= NF; f++) {
                k = $f; sub(/=.*/, "", k); v = substr($f, length(k) + 2)
                if (k !~ /^(max-connections|expires|quota|quota-period)$/ || v !~ /^[A-Za-z0-9:.+_-]+$/)
                    bad("\"" $f "\" (for \"" name "\") is not max-connections=N, expires=RFC3339, quota=SIZE or quota-period=DURATION")
                lim[name] = lim[name] k " = " (k == "max-connections" ? v : "\"" v "\"") "\n"
            }
        }
        END {
            if (failed) exit 1
            if (n == 0) exit 0
            print "[secrets]"
            for (j = 1; j <= n; j++) print out[j]
            for (j = 1; j <= n; j++) {
                name = out[j]; sub(/ = .*/, "", name)
                if (name in lim) printf "\n[secret-limits.%s]\n%s", name, lim[name]
            }
        }'
}
