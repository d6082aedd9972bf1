#!/usr/bin/env bash
# Stand up a local MediaWiki (Debian's `mediawiki` package, SQLite, nginx +
# php-fpm) on 127.0.0.1 for the realwiki tests and the demo.
#
# Usage: bash realwiki/wiki.sh up|stop|status|reset|env
#   up      install packages and the wiki if missing, create the accounts,
#           start php-fpm and nginx, wait (bounded) until api.php responds
#   stop    stop the servers this script started (by PID)
#   status  print the state of each server; exit 1 unless all are running
#   reset   stop, delete $RW_DIR, then `up`
#   env     print `export` lines (directory, ports, URLs, CA file)
#
# Environment (defaults in brackets):
#   RW_DIR [/tmp/mwcomms-realwiki]  everything the wiki writes lives here
#   RW_HTTP_PORT [28181]            nginx, plain http
#   RW_TLS_PORT [28443]             nginx, https with a self-signed certificate
#                                   for 127.0.0.1 ($RW_DIR/tls/cert.pem)
#   RW_WAIT_S [30]                  maximum wait for a server to respond
#
# Accounts: Admin (sysop, bureaucrat), PwbBot (bot, sysop) and the
# BotPassword PwbBot@ci.  Nothing outside $RW_DIR is modified, apart from
# the apt packages.  All listeners bind to 127.0.0.1.
set -euo pipefail

RW_DIR=${RW_DIR:-/tmp/mwcomms-realwiki}
RW_HTTP_PORT=${RW_HTTP_PORT:-28181}
RW_TLS_PORT=${RW_TLS_PORT:-28443}
RW_WAIT_S=${RW_WAIT_S:-30}
RW_FPM_CHILDREN=4
RW_ADMIN=Admin
RW_ADMIN_PASS=${RW_ADMIN_PASS:-Admin-pass-0123456789}
RW_BOT=PwbBot
RW_BOT_PASS=${RW_BOT_PASS:-PwbBot-pass-0123456789}
RW_BOTPW_APPID=ci
# action=login treats lgpassword as a BotPassword only when it matches
# ^[0-9a-w]{32,}$ (BotPassword::canonicalizeLoginData, MediaWiki 1.39).
# Other passwords are accepted by createBotPassword.php but never log in.
RW_BOTPW_PASS=${RW_BOTPW_PASS:-0123456789abcdefghijklmnopqrstuv}
RW_BOTPW_GRANTS=basic,highvolume,editpage,createeditmovepage,uploadfile,uploadeditmovefile,editmyoptions,editmywatchlist,delete,protect,rollback,patrol

MW=/usr/share/mediawiki
RUN="$RW_DIR/run"
LOG="$RW_DIR/log"
export MW_CONFIG_FILE="$RW_DIR/LocalSettings.php"   # honoured by MediaWiki >= 1.38

log() { printf '[realwiki %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

check_rw_dir() {
    case "$RW_DIR" in
        /*/*) ;;
        *) die "RW_DIR must be an absolute path below a directory, not '$RW_DIR'" ;;
    esac
}

# ---- packages ---------------------------------------------------------------

PKGS=(mediawiki php-cli php-sqlite3 php-intl php-mbstring php-xml php-apcu
      php-fpm nginx openssl curl)

php_version() { php -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;' 2>/dev/null; }

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
    local missing=() p v
    for p in "${PKGS[@]}"; do
        if pkg_installed "$p"; then continue; fi
        # The php-fpm metapackage is optional when the versioned package of
        # the installed PHP (e.g. php8.2-fpm) is already present.
        if [ "$p" = php-fpm ] && v=$(php_version) && pkg_installed "php$v-fpm"; then
            continue
        fi
        missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then return 0; fi
    [ "$(id -u)" = 0 ] || die "packages missing (${missing[*]}); run as root or install them"
    log "installing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$LOG/apt.log" 2>&1 || { tail -20 "$LOG/apt.log" >&2; die "apt-get update failed"; }
    # --no-install-recommends keeps out MySQL (Recommended by mediawiki).
    # nginx and the versioned php-fpm package (php8.2-fpm on Debian 12) in the
    # same transaction stop apt from choosing apache2 for mediawiki's
    # "apache2 | httpd" and php's "libapache2-mod-php8.2 | php8.2-fpm | ...".
    # The php-fpm metapackage alone is not enough: a simulated install on an
    # empty system still picked libapache2-mod-php8.2 (apt 2.6, Debian 12).
    local fpm_pkg
    fpm_pkg=$(apt-cache depends php-fpm 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^php[0-9.]+-fpm$/ { print $2; exit }')
    apt-get install -y -q --no-install-recommends "${PKGS[@]}" $fpm_pkg >>"$LOG/apt.log" 2>&1 \
        || { tail -20 "$LOG/apt.log" >&2; die "apt-get install failed (log: $LOG/apt.log)"; }
}

find_php_fpm() {
    local v bin
    v=$(php_version) || die "php not found after installing php-cli"
    for bin in "php-fpm$v" "/usr/sbin/php-fpm$v"; do
        if command -v "$bin" >/dev/null 2>&1; then command -v "$bin"; return 0; fi
    done
    die "php-fpm for PHP $v not found (expected php-fpm$v; install php$v-fpm)"
}

# ---- wiki installation ------------------------------------------------------

write_settings() {
    cat >>"$RW_DIR/LocalSettings.php" <<'PHP'

# ---- settings for the local test wiki (appended by realwiki/wiki.sh) ----
# Served on an http and an https port: take $wgServer from each web request.
if ( PHP_SAPI !== 'cli' ) {
	$wgServer = WebRequest::detectServer();
}
# Article path /w/index.php?title=$1 under every SAPI.
$wgUsePathInfo = false;
$wgShowExceptionDetails = true;
$wgEnableEmail = false;
$wgEnableUserEmail = false;
$wgEnableBotPasswords = true;
# Tests log in and out many times.
$wgPasswordAttemptThrottle = [];
$wgAccountCreationThrottle = [];
$wgGroupPermissions['bot']['noratelimit'] = true;
# A failed login must fail loudly instead of editing as an IP address.
$wgGroupPermissions['*']['edit'] = false;
$wgGroupPermissions['*']['createpage'] = false;
# Sessions in APCu: shared by the php-fpm children, lost when php-fpm stops.
$wgSessionCacheType = CACHE_ACCEL;
# Jobs run only from maintenance/runJobs.php, not at the end of API requests.
$wgJobRunRate = 0;
# Debian's PlatformSettings.php points these at /var/cache and /var/log.
$wgCacheDirectory = __DIR__ . '/cache';
$wgDBerrorLog = __DIR__ . '/log/mw-dberror.log';
$wgDebugLogGroups['exception'] = __DIR__ . '/log/mw-exception.log';
$wgDebugLogGroups['error'] = __DIR__ . '/log/mw-error.log';
$wgDebugLogGroups['fatal'] = __DIR__ . '/log/mw-fatal.log';
# Uploads, served by nginx from $RW_DIR/uploads at /uploads.
$wgEnableUploads = true;
$wgUploadDirectory = __DIR__ . '/uploads';
$wgUploadPath = '/uploads';
$wgFileExtensions = [ 'png', 'gif', 'jpg', 'jpeg', 'webp', 'svg', 'pdf', 'txt' ];
PHP
}

install_wiki() {
    if [ -f "$RW_DIR/LocalSettings.php" ] && [ -f "$RW_DIR/data/realwiki.sqlite" ]; then
        return 0
    fi
    log "installing MediaWiki into $RW_DIR"
    rm -rf "$RW_DIR/data" "$RW_DIR/LocalSettings.php"
    mkdir -p "$RW_DIR/data"
    # install.php writes LocalSettings.php into --confpath instead of /etc/mediawiki.
    php "$MW/maintenance/install.php" --quiet \
        --dbtype=sqlite --dbpath="$RW_DIR/data" --dbname=realwiki \
        --confpath="$RW_DIR" --server="http://127.0.0.1:$RW_HTTP_PORT" \
        --scriptpath=/w --lang=en --skins=Vector \
        --pass="$RW_ADMIN_PASS" RealWiki "$RW_ADMIN" >"$LOG/install.log" 2>&1 \
        || { tail -20 "$LOG/install.log" >&2; die "install.php failed (log: $LOG/install.log)"; }
    write_settings
    # WAL journal: readers no longer block the writer.  Concurrent writers can
    # still stall on SQLite locks, so tests keep their edits serial.
    local f
    for f in "$RW_DIR"/data/*.sqlite; do
        # shellcheck disable=SC2016  # PHP code, not shell
        php -r '$d = new PDO("sqlite:" . $argv[1]); $d->query("PRAGMA journal_mode=WAL");' "$f"
    done
    # Build the l10n cache now rather than in the first web request.
    php "$MW/maintenance/rebuildLocalisationCache.php" --lang=en --quiet >>"$LOG/install.log" 2>&1
}

mw_sql() { php "$MW/maintenance/sql.php" --json --query "$1"; }

create_accounts() {
    # Create the bot only when missing: a password change through
    # createAndPromote.php --force invalidates every BotPassword of the user.
    if ! mw_sql "SELECT user_id FROM user WHERE user_name='$RW_BOT'" | grep -q user_id; then
        php "$MW/maintenance/createAndPromote.php" --bot --sysop \
            "$RW_BOT" "$RW_BOT_PASS" >>"$LOG/users.log" 2>&1 \
            || die "createAndPromote.php $RW_BOT failed (log: $LOG/users.log)"
        log "created user $RW_BOT (groups bot, sysop)"
    fi
    # Re-create the BotPassword only when its settings changed or MediaWiki
    # invalidated it, because re-creating it ends the sessions of running tests.
    local stamp="$RW_DIR/botpassword.stamp" want row
    want=$(printf '%s\n%s\n%s\n' "$RW_BOTPW_APPID" "$RW_BOTPW_GRANTS" "$RW_BOTPW_PASS" | sha256sum | cut -d' ' -f1)
    row=$(mw_sql "SELECT bp_password FROM bot_passwords WHERE bp_app_id='$RW_BOTPW_APPID'")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && grep -q '"bp_password": *":pbkdf2' <<<"$row"; then
        return 0
    fi
    mw_sql "DELETE FROM bot_passwords WHERE bp_app_id='$RW_BOTPW_APPID'" >/dev/null
    # The script prints the password it was given: keep it out of the log.
    local output status=0
    output=$(php "$MW/maintenance/createBotPassword.php" \
        --appid="$RW_BOTPW_APPID" --grants="$RW_BOTPW_GRANTS" \
        "$RW_BOT" "$RW_BOTPW_PASS" 2>&1) || status=$?
    printf '%s\n' "${output//"$RW_BOTPW_PASS"/[password not shown]}" \
        >>"$LOG/users.log"
    [ "$status" -eq 0 ] \
        || die "createBotPassword.php failed (log: $LOG/users.log)"
    echo "$want" >"$stamp"
    log "created BotPassword $RW_BOT@$RW_BOTPW_APPID"
}

make_cert() {
    local d="$RW_DIR/tls"
    [ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/key.pem" -out "$d/cert.pem" -days 365 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>"$LOG/openssl.log" \
        || die "openssl could not create the certificate (log: $LOG/openssl.log)"
    chmod 600 "$d/key.pem"
}

# ---- processes --------------------------------------------------------------

# A process counts as running unless it is gone or a zombie.  A server started
# by an earlier run is re-parented to PID 1 and can linger as a zombie briefly.
running() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# The pid file names a running process whose command line contains $RW_DIR,
# so a stale pid file whose PID was reused never counts (and is never killed).
alive() {
    local pid
    [ -f "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && running "$pid" \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$RW_DIR"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_api() {  # $@ = pid files that must stay alive while waiting
    local url="http://127.0.0.1:$RW_HTTP_PORT/w/api.php?action=query&meta=siteinfo&format=json"
    local i f
    local code=none
    for ((i = 0; i < RW_WAIT_S * 10; i++)); do
        code=$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || code=none
        if [ "$code" = 200 ]; then return 0; fi
        for f in "$@"; do
            if ! alive "$f"; then
                tail -n 5 "$LOG"/nginx-error.log "$LOG"/php-fpm.log >&2 2>/dev/null || true
                stop_servers
                die "$(basename "$f" .pid) exited during startup; servers stopped (logs in $LOG)"
            fi
        done
        sleep 0.1
    done
    stop_servers
    die "$url did not return HTTP 200 within ${RW_WAIT_S}s (last status: $code); servers stopped (logs in $LOG)"
}

write_server_configs() {
    mkdir -p "$RUN/nginx-tmp"
    cat >"$RUN/php-fpm.conf" <<EOF
[global]
pid = $RUN/php-fpm.pid
error_log = $LOG/php-fpm.log
daemonize = no
[realwiki]
; root (with -R) so web requests and maintenance scripts share file ownership
user = root
group = root
listen = $RUN/php-fpm.sock
listen.mode = 0600
pm = static
pm.max_children = $RW_FPM_CHILDREN
catch_workers_output = yes
env[MW_CONFIG_FILE] = $MW_CONFIG_FILE
EOF
    # As root, nginx would run its workers as www-data, which cannot enter a
    # private RW_DIR (such as a 0700 pytest directory) or use the 0600
    # php-fpm socket.  Run them as the user that runs this script instead.
    local user_line=''
    if [ "$(id -u)" = 0 ]; then user_line="user $(id -un) $(id -gn);"; fi
    cat >"$RUN/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $RUN/nginx.pid;
error_log $LOG/nginx-error.log warn;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    # \$upstream_response_time is the PHP time of each request
    log_format timing '\$msec \$status \$request_method \$request_time \$upstream_response_time \$body_bytes_sent \$request_uri';
    access_log $LOG/nginx-access.log timing;
    client_body_temp_path $RUN/nginx-tmp/body;
    fastcgi_temp_path $RUN/nginx-tmp/fastcgi;
    proxy_temp_path $RUN/nginx-tmp/proxy;
    uwsgi_temp_path $RUN/nginx-tmp/uwsgi;
    scgi_temp_path $RUN/nginx-tmp/scgi;
    client_max_body_size 64m;
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:$RW_HTTP_PORT;
        listen 127.0.0.1:$RW_TLS_PORT ssl;
        ssl_certificate $RW_DIR/tls/cert.pem;
        ssl_certificate_key $RW_DIR/tls/key.pem;
        root $RW_DIR/htdocs;
        index index.php;
        location /uploads/ {
            alias $RW_DIR/uploads/;
        }
        location ~ \.php(/|\$) {
            fastcgi_split_path_info ^(.+?\.php)(/.*)\$;
            try_files \$fastcgi_script_name =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param PATH_INFO \$fastcgi_path_info;
            fastcgi_pass unix:$RUN/php-fpm.sock;
        }
    }
}
EOF
}

start_servers() {
    local fpm p
    fpm=$(find_php_fpm)
    if ! alive "$RUN/nginx.pid"; then
        for p in "$RW_HTTP_PORT" "$RW_TLS_PORT"; do
            if port_busy "$p"; then
                die "127.0.0.1:$p is in use by another program; set RW_HTTP_PORT / RW_TLS_PORT"
            fi
        done
    fi
    write_server_configs
    if ! alive "$RUN/php-fpm.pid"; then
        log "starting $(basename "$fpm") ($RW_FPM_CHILDREN children)"
        "$fpm" -R -y "$RUN/php-fpm.conf" >>"$LOG/php-fpm.out" 2>&1 </dev/null 9>&- &
        echo $! >"$RUN/php-fpm.pid"
    fi
    if ! alive "$RUN/nginx.pid"; then
        log "starting nginx on 127.0.0.1:$RW_HTTP_PORT (http) and :$RW_TLS_PORT (https)"
        nginx -p "$RUN" -c "$RUN/nginx.conf" -e "$LOG/nginx-error.log" \
            >>"$LOG/nginx.out" 2>&1 </dev/null 9>&- &
        echo $! >"$RUN/nginx.pid"
    fi
    wait_api "$RUN/nginx.pid" "$RUN/php-fpm.pid"
}

stop_one() {  # $1 = pid file: SIGTERM, wait up to 5 s, then SIGKILL
    local f=$1 pid i
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if alive "$f"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        log "stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
}

stop_servers() {
    stop_one "$RUN/nginx.pid"
    stop_one "$RUN/php-fpm.pid"
}

status() {
    local f rc=0
    for f in "$RUN/nginx.pid" "$RUN/php-fpm.pid"; do
        if alive "$f"; then
            echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
        else
            echo "$(basename "$f" .pid): stopped"
            rc=1
        fi
    done
    return $rc
}

print_env() {
    cat <<EOF
export RW_DIR='$RW_DIR'
export RW_HTTP_PORT='$RW_HTTP_PORT'
export RW_TLS_PORT='$RW_TLS_PORT'
export RW_HTTP_URL='http://127.0.0.1:$RW_HTTP_PORT'
export RW_HTTPS_URL='https://127.0.0.1:$RW_TLS_PORT'
export RW_API_URL='http://127.0.0.1:$RW_HTTP_PORT/w/api.php'
export RW_CA_FILE='$RW_DIR/tls/cert.pem'
EOF
}

up() {
    mkdir -p "$RW_DIR" "$LOG" "$RUN" "$RW_DIR/cache" "$RW_DIR/uploads" "$RW_DIR/htdocs"
    touch "$RW_DIR/.realwiki"
    # Concurrent `up` calls (parallel test sessions) run one after another.
    # The servers are started with fd 9 closed so they do not keep the lock.
    exec 9>"$RW_DIR/.lock"
    flock -w 120 9 || die "timed out after 120 s waiting for $RW_DIR/.lock, held by another 'wiki.sh up'; retry when it finishes"
    install_packages
    install_wiki
    ln -sfn "$MW" "$RW_DIR/htdocs/w"   # URLs /w/api.php, /w/index.php
    create_accounts
    make_cert
    start_servers
    log "up: http://127.0.0.1:$RW_HTTP_PORT/w/api.php"
}

check_rw_dir
case "${1:-}" in
    up) up ;;
    stop) stop_servers ;;
    status) status ;;
    reset)
        stop_servers
        if [ -e "$RW_DIR" ]; then
            [ -e "$RW_DIR/.realwiki" ] || die "$RW_DIR was not created by this script; not deleting it"
            rm -rf "$RW_DIR"
        fi
        up
        ;;
    env) print_env ;;
    *) sed -n '2,23p' "$0" >&2; exit 2 ;;
esac
