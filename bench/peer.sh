# Sourced by bench/fleet.sh and bench/celery-ab.sh (ROOT set to the workspace): `peer_copy NAME`
# copies the Celery peer benchmark ($PEER_SRC, default shared/peer/celery beside this checkout)
# into $PEER_DIR (default /tmp/celeriac-peer-celery), where its bench.sh may write its .venv and
# results/ (the shared directory must not be written), and sets PEER to the copy.
peer_copy() {
  PEER_SRC=${PEER_SRC:-$(cd "$ROOT/.." && pwd)/shared/peer/celery}
  PEER_DIR=${PEER_DIR:-/tmp/celeriac-peer-celery}
  if [ ! -x "$PEER_SRC/bench.sh" ]; then
    echo "$1: no Celery peer benchmark at $PEER_SRC (set PEER_SRC)" >&2; exit 1
  fi
  # Always a copy: as root a `-w` test would say the shared directory is writable.
  case "$(realpath -m "$PEER_DIR")/" in
    "$(realpath "$PEER_SRC")"/*) echo "$1: PEER_DIR must not be inside $PEER_SRC" >&2; exit 1 ;;
  esac
  mkdir -p "$PEER_DIR/results"
  cp -R "$PEER_SRC/bench" "$PEER_SRC/bench.sh" "$PEER_SRC/requirements.txt" "$PEER_SRC/README.md" "$PEER_DIR/"
  chmod -R u+w "$PEER_DIR"
  PEER=$PEER_DIR
}
