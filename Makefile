# The two commands of the README:  `make book`  and  `make test`.
# Each sets up everything it needs (a virtual environment in .venv) and works as the first command run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Without an NVIDIA GPU, take the CPU build of torch (on this machine kind it lies on the local disk).
# With a GPU, torch comes from the normal index. Either way an already-installed recent torch is kept.
TORCH_CONSTRAINT := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "-c constraints-cpu.txt")

.PHONY: setup book test serve browser clean

$(VENV)/.installed: requirements.txt constraints-cpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_CONSTRAINT) -r requirements.txt -e .
	$(BIN)/python -m pip install --quiet --no-deps k-diffusion==0.1.1.post1
	touch $@

setup: $(VENV)/.installed

# Build the website, executing every chapter (results are cached in _build/.jupyter_cache). The extension
# _ext/never_publish_errors.py (loaded by _config.yml) executes again every page that failed or showed an
# error last time, and every page when DIFFBOOK_SCALE or diffbook's sources changed: a failed or stale
# execution is never published. See CONTRIBUTING.md.
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

# The whole test suite: unit tests, every chapter and exercise notebook, the built site in Chromium.
test: setup browser
	$(BIN)/python -m pytest

# Headless Chromium for the built-site test (Debian's package; needs root or sudo to install).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the built-site test"; \
	    SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the built-site test will be skipped"

serve:
	$(BIN)/python -m http.server --directory _build/html 8000

clean:
	rm -rf _build
