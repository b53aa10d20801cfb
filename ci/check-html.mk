# `make check-html`: open every page of the built book in headless Chromium, as a reader does,
# and fail on what a reader would trip over (ci/check_html.py lists the defects). Chromium is
# the system one (Debian's `chromium` package; CHROMIUM=/path overrides), driven by Playwright
# (ci/html-requirements.txt, installed into .venv on first use): no browser download.
# Screenshots of each chapter's first screen, light and dark: _build/check-html/.
# Included by the Makefile.
#   make check-html CHECK_HTML_ARGS="--pages book/08_interpretability --notes"
CHECK_HTML_ARGS ?=
HTML_STAMP := $(VENV)/.installed-html
CHROMIUM ?= $(firstword $(wildcard /usr/bin/chromium /usr/bin/chromium-browser))
export CHROMIUM

.PHONY: check-html
check-html: setup $(HTML_STAMP)
	@if [ -z "$(CHROMIUM)" ] || [ ! -x "$(CHROMIUM)" ]; then \
	  echo "check-html: no Chromium found (looked at \$$CHROMIUM, /usr/bin/chromium," \
	    "/usr/bin/chromium-browser)."; \
	  echo "check-html: install it with: apt-get install -y chromium  (or set CHROMIUM=/path)"; \
	  exit 1; \
	fi
	$(BIN)/pytest -q -p no:cacheprovider tests/test_check_html.py
	@test -f $(BOOK_HTML) || $(BIN)/jupyter-book build . -W -n --keep-going
	$(BIN)/python ci/check_html.py _build/html $(CHECK_HTML_ARGS)

$(HTML_STAMP): ci/html-requirements.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r ci/html-requirements.txt
	@touch $@
