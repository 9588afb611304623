#!/usr/bin/env bash
# Fails when a markdown file of the repository points outside it or at a file it does not have:
#   - a relative link target ([text](path), ![alt](path), [ref]: path) that does not exist in the
#     repository, is git-ignored, or resolves outside the repository;
#   - any text, code included, holding a path that starts with ../shared or /work/.
# URLs with a scheme (https:, mailto:) and same-page anchors (#...) are not checked.
# Files: every *.md git knows or would add (tracked, plus untracked files not ignored).
# Usage: scripts/check-links.sh    (exit 0: clean; 1: problems listed as file:line: ...)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
status=0
problem() { echo "$1: $2" >&2; status=1; }

while IFS= read -r -d '' file; do
  [ -f "$file" ] || continue
  dir=$(dirname "$file")

  # Paths that leave the repository, anywhere in the text.
  while IFS= read -r hit; do
    [ -n "$hit" ] && problem "$file:${hit%%:*}" "path outside the repository: ${hit#*:}"
  done < <(grep -nE '\.\./shared|(^|[^[:alnum:]_.-])/work/' "$file" || true)

  # Link targets outside fenced code blocks and inline code, one "line<TAB>target" per link.
  while IFS=$'\t' read -r line target; do
    target=${target#<}; target=${target%%>*}      # <path with spaces>
    target=${target%% *}                          # drop a "title"
    case "$target" in
      '' | '#'* | [a-zA-Z]*:*) continue ;;        # same-page anchor, URL with a scheme
    esac
    path=${target%%#*}; path=${path%%\?*}
    [ -n "$path" ] || continue
    case "$path" in
      /*) resolved=$(realpath -m "$root$path") ;;
      *) resolved=$(realpath -m "$dir/$path") ;;
    esac
    case "$resolved/" in
      "$root"/*) ;;
      *) problem "$file:$line" "link leaves the repository: $target"; continue ;;
    esac
    if [ ! -e "$resolved" ]; then
      problem "$file:$line" "link target does not exist: $target"
    elif git check-ignore -q "$resolved"; then
      problem "$file:$line" "link target is git-ignored (absent from a clone): $target"
    fi
  done < <(awk '
    /^[ \t]*(```|~~~)/ { fence = !fence; next }
    fence { next }
    {
      s = $0
      gsub(/`[^`]*`/, "", s)                                  # inline code
      if (match(s, /^[ \t]*\[[^]]+\]:[ \t]*[^ \t]+/)) {       # [ref]: target
        t = substr(s, RSTART, RLENGTH); sub(/^[ \t]*\[[^]]+\]:[ \t]*/, "", t)
        print NR "\t" t
        next
      }
      while (match(s, /\]\([^)]*\)/)) {                       # [text](target), ![alt](target)
        t = substr(s, RSTART + 2, RLENGTH - 3)
        print NR "\t" t
        s = substr(s, RSTART + RLENGTH)
      }
    }' "$file")
done < <(git ls-files -z --cached --others --exclude-standard -- '*.md')

if [ "$status" -eq 0 ]; then echo "check-links: every markdown link stays in the repository and exists"; fi
exit "$status"
