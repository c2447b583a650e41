# virtops.libvirt: development and CI entry points (GNU make).
#
#   make setup        host packages + libvirtd (scripts/setup-host.sh), dev venv, pip stand-in
#   make test         setup, then ee, sanity, lint, units, integration, molecule, faults-quick; stops at the first failure
#   make ee | sanity | lint | units | integration | molecule | faults | faults-quick | bench | demo | clean
#   make changelog    changelogs/changelog.yaml, CHANGELOG.md/.rst from changelogs/fragments (galaxy.yml version)
#
# ansible-test needs the collection under .../ansible_collections/virtops/libvirt/, so the
# sanity/units/integration targets run in a copy of the working tree in $(BUILD) (see
# `collection`); their results land in $(COLLECTION_DIR)/tests/output.
# Extra arguments: SANITY_ARGS, UNITS_ARGS, INTEGRATION_ARGS, LINT_ARGS, MOLECULE_ARGS, DEMO_ARGS
# (e.g. `make integration INTEGRATION_ARGS='blockcommit -v'`).

VENV  ?= .venv
PY    ?= python3
BUILD ?= .build

SANITY_ARGS      ?=
UNITS_ARGS       ?=
INTEGRATION_ARGS ?=
LINT_ARGS        ?=
MOLECULE_ARGS    ?=
DEMO_ARGS        ?=

SHELL       := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# Stages and their prerequisites run strictly in order, even under `make -j`.
.NOTPARALLEL:

ROOT           := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV_DIR       := $(abspath $(VENV))
BUILD_DIR      := $(abspath $(BUILD))
COLLECTION_DIR := $(BUILD_DIR)/ansible_collections/virtops/libvirt
VENV_PY        := $(VENV_DIR)/bin/python
VENV_STAMP     := $(VENV_DIR)/.virtops-dev.stamp
REQUIREMENTS   := $(ROOT)/scripts/requirements-dev.txt $(ROOT)/scripts/constraints-dev.txt

# The venv's tools come first.
export PATH := $(VENV_DIR)/bin:$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Python X.Y of the venv (controller and, for units/integration, module interpreter).
PYVER = $(shell $(VENV_PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ANSIBLE_TEST = cd $(COLLECTION_DIR) && $(VENV_DIR)/bin/ansible-test

# rsync excludes: VCS, local environments, build output, caches (anchored at the repo root).
rel = $(patsubst $(ROOT)/%,%,$(1))
RSYNC_EXCLUDES := $(addprefix --exclude=,$(sort /.git/ /.venv/ /.build/ \
	/$(call rel,$(VENV_DIR))/ /$(call rel,$(BUILD_DIR))/ /tests/output/ /.ansible/ /.cache/)) \
	--exclude=__pycache__/ --exclude=.pytest_cache/ --exclude='*.pyc'

banner = @printf '\n==== %s ====\n' '$(1)'

.PHONY: help setup host venv pip-standin collection sanity lint units integration molecule \
	test demo clean

help:
	@sed -n '2,12s/^# \{0,1\}//p' $(ROOT)/Makefile

# --- setup -----------------------------------------------------------------------------
setup: host venv pip-standin

host:
	$(ROOT)/scripts/setup-host.sh

venv: $(VENV_STAMP)

# Created when missing, updated when the requirement files change. Needs the host packages
# (python3-venv; libvirt-dev, pkg-config, gcc, python3-dev to build libvirt-python).
$(VENV_STAMP): $(REQUIREMENTS) | host
	@test -x $(VENV_PY) || { echo "creating venv $(VENV_DIR)"; $(PY) -m venv $(VENV_DIR); }
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -r $(ROOT)/scripts/requirements-dev.txt \
		-c $(ROOT)/scripts/constraints-dev.txt
	$(VENV_PY) -c 'import libvirt, ansible_test; print("venv ok: libvirt-python", libvirt.getVersion())'
	@touch $@

pip-standin: $(VENV_STAMP)
	$(ROOT)/scripts/install-pip-standin.sh $(VENV_PY)

# --- collection copy for ansible-test -----------------------------------------------------
# The copy gets an empty git repository of its own: ansible-test looks for `.git` in the
# collection dir and its parents, and inside our repo's (ignored) $(BUILD) it would find the
# outer repo and see no files at all ("All targets skipped"). With its own repo it lists every
# file that is not git-ignored (`git ls-files --others --exclude-standard`).
collection: | host
	@mkdir -p $(COLLECTION_DIR)
	rsync -a --delete $(RSYNC_EXCLUDES) $(ROOT)/ $(COLLECTION_DIR)/
	@test -e $(COLLECTION_DIR)/.git || git -C $(COLLECTION_DIR) init -q

# ansible-playbook / ansible-lint / molecule resolve `virtops.libvirt.*` against the copy.
# (ansible-test manages its own collection paths.)
lint molecule demo: export ANSIBLE_COLLECTIONS_PATH := $(BUILD_DIR)

# --- test stages -------------------------------------------------------------------------------
sanity: setup collection
	$(ANSIBLE_TEST) sanity --venv --python $(PYVER) --color no $(SANITY_ARGS)

lint: setup collection
	cd $(ROOT) && ansible-lint --profile production --offline \
		--exclude $(call rel,$(BUILD_DIR)) --exclude $(call rel,$(VENV_DIR)) --exclude tests/output \
		$(LINT_ARGS)

# The dev venv (pytest, pytest-mock, libvirt-python) is the test environment: unit tests may
# import the real libvirt bindings.
units: setup collection
	$(ANSIBLE_TEST) units --local --python-interpreter $(VENV_PY) --color no $(UNITS_ARGS)

# Targets run modules as root against the local libvirtd with the venv's Python (libvirt-python).
# The targets create and destroy their own VMs (hence --allow-destructive). A run in which
# every target was skipped is a failure, not a pass.
integration: setup collection
	$(ANSIBLE_TEST) integration --local --allow-destructive --python-interpreter $(VENV_PY) \
		--color no $(INTEGRATION_ARGS) 2>&1 | tee $(BUILD_DIR)/integration.log
	@! grep -q 'All targets skipped' $(BUILD_DIR)/integration.log || \
		{ echo 'integration: no target ran' >&2; exit 1; }

# `reset` first: molecule keeps a scenario's state ("prepared") between runs, and a stale
# state would skip the prepare step that creates the VMs.
molecule: setup collection
	@if [ -d $(ROOT)/extensions/molecule ]; then \
		cd $(ROOT)/extensions && for scenario in molecule/*/; do \
			molecule reset -s "$$(basename $$scenario)"; \
		done && molecule test --all $(MOLECULE_ARGS); \
	else \
		echo "no molecule scenarios"; \
	fi

# The execution environments of docs/awx.md, as written there: `ansible-builder create` with the
# collection built from this tree, then tests/ee/check_ee.py checks the build contexts (an
# ansible-core that meta/runtime.yml allows, on a Python it runs on; the collection) and that
# this collection adds no Python or system package to the EE. No container runtime, no network.
.PHONY: ee
ee: setup
	rm -rf $(BUILD_DIR)/ee && mkdir -p $(BUILD_DIR)/ee
	ansible-galaxy collection build --force --output-path $(BUILD_DIR)/ee $(ROOT)
	$(VENV_PY) $(ROOT)/tests/ee/check_ee.py --doc $(ROOT)/docs/awx.md --root $(ROOT) --workdir $(BUILD_DIR)/ee

# Release notes of the galaxy.yml version from the fragments that no release holds yet. The
# fragments stay (keep_fragments); run it again after merging more fragments into an
# unreleased version: --update-existing adds them and --refresh-fragments takes in edits.
.PHONY: changelog
changelog: venv
	cd $(ROOT) && antsibull-changelog lint && \
		antsibull-changelog release --update-existing --refresh-fragments

# Each stage is its own make run, in order; the first non-zero exit stops the whole run.
TEST_STAGES := ee sanity lint units integration molecule faults-quick
test:
	$(call banner,setup)
	@$(MAKE) --no-print-directory -f $(ROOT)/Makefile setup collection
	@for stage in $(TEST_STAGES); do \
		printf '\n==== %s ====\n' "$$stage"; \
		start=$$SECONDS; \
		if ! $(MAKE) --no-print-directory -f $(ROOT)/Makefile $$stage; then \
			printf '\n==== FAILED: %s (after %ss) ====\n' "$$stage" "$$((SECONDS - start))"; \
			exit 1; \
		fi; \
		printf '==== %s passed (%ss) ====\n' "$$stage" "$$((SECONDS - start))"; \
	done
	$(call banner,all stages passed: $(TEST_STAGES))

demo: setup collection
	@test -f $(ROOT)/scripts/demo.yml || { echo "scripts/demo.yml does not exist yet" >&2; exit 1; }
	ansible-playbook $(ROOT)/scripts/demo.yml $(DEMO_ARGS)

clean:
	rm -rf $(BUILD_DIR) $(ROOT)/tests/output

# --- fault injection (tests/faults) ------------------------------------------------------------
# Real VMs (vt-ft-*) backed up through ansible-runner while faults are injected: signals to
# ansible-playbook and to the module processes at kill points, libvirtd killed, destination
# full, VM destroyed/shut down, two runs at once, a commit that never gets READY; plus the
# bad-input table. FAULT_REPS repetitions of the kill-point matrix (default 3); FAULTS_ARGS
# goes to pytest (e.g. FAULTS_ARGS='-m quick'). Results: tests/output/faults.jsonl,
# tests/output/bad_inputs.json, rendered into tests/output/faults.md by tests/faults/report.py.
# The libvirtd cases kill and restart the host's libvirtd.
FAULT_REPS  ?= 3
FAULTS_ARGS ?=
.PHONY: faults
faults: export ANSIBLE_COLLECTIONS_PATH := $(BUILD_DIR)
faults: setup collection
	@mkdir -p $(ROOT)/tests/output
	since=$$(date -u +%Y-%m-%dT%H:%M:%SZ); \
	cd $(ROOT)/tests/faults && FAULT_REPS=$(FAULT_REPS) $(VENV_PY) -m pytest $(FAULTS_ARGS); \
		rc=$$?; $(VENV_PY) $(ROOT)/tests/faults/report.py --since $$since > $(ROOT)/tests/output/faults.md; \
		echo "report: $(ROOT)/tests/output/faults.md"; exit $$rc

# The quick subset that `make test` runs (marked `quick`, one repetition).
.PHONY: faults-quick
faults-quick:
	@$(MAKE) --no-print-directory -f $(ROOT)/Makefile faults FAULT_REPS=1 FAULTS_ARGS='-m quick'

# --- benchmark (bench/) ------------------------------------------------------------------------
# The live_backup role against the limit (qemu-img convert + sync), a hand-written virsh script
# and virtnbdbackup (installed with apt when missing), on VMs of its own (vt-bn-*, images under
# /var/lib/virtops-bench, destroyed at the end): cold cache, contenders alternated, medians and
# ratios; per-phase split of the role, time on the overlay, pivot delay after READY. A benchmark,
# not a test: it fails only when a contender fails. BENCH_QUICK=1: one repetition, small cases.
# Results: bench/output/results.json (or $BENCH_OUTPUT); bench/render.py (matplotlib, bench/.venv)
# writes performance-measured.md and performance-scaling.png next to it, and in full mode (or with
# BENCH_DOCS=1) the generated section of docs/performance.md and docs/performance-scaling.png.
BENCH_VENV := $(ROOT)/bench/.venv
.PHONY: bench
bench: setup collection $(BENCH_VENV)/.virtops-bench.stamp
	@command -v virtnbdbackup >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q virtnbdbackup || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q virtnbdbackup; }; }
	rc=0; $(VENV_PY) $(ROOT)/bench/bench.py || rc=$$?; \
		$(BENCH_VENV)/bin/python $(ROOT)/bench/render.py "$${BENCH_OUTPUT:-$(ROOT)/bench/output}/results.json" || rc=$${rc/#0/1}; \
		exit $$rc

$(BENCH_VENV)/.virtops-bench.stamp: $(ROOT)/bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || { echo "creating venv $(BENCH_VENV)"; $(PY) -m venv $(BENCH_VENV); }
	$(BENCH_VENV)/bin/python -m pip install -qq -r $<
	@touch $@
