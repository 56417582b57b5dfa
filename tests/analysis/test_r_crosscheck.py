"""Exports R reads directly, and numbers R computes independently (r-base-core, r-cran-ordinal).

MRMCaov and iMRMC themselves are not packaged for Debian: their input layouts are checked as
documented (MRMCaov's example data sets have columns reader, treatment, case, truth, rating;
the .imrmc file has NR/N0/N1/NM lines, "BEGIN DATA:" and rows readerID,caseID,modalityID,score
with truth rows of readerID -1, as iMRMC writes and RJafroc's reader parses them), by parsing
them in R and recomputing each reader's empirical AUC there. R's ordinal::clm cross-checks the
proportional-odds effect, R's wilcox.test the rank-biserial correlation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.accuracy import finding_rating_array
from analysis.image_quality import proportional_odds, rank_biserial
from analysis.mrmc import or_analysis
from analysis.reads import reads_from_answers
from studies.export import answers_frame, export, imrmc_frame, mrmc_frame, truth_frame
from studies.store import Store
from tests.studies.study_factory import FakeClock, build_study, read_with_random_grades

RSCRIPT = shutil.which("Rscript")
pytestmark = pytest.mark.skipif(
    RSCRIPT is None, reason="Rscript not found (Debian: apt-get install r-base-core)"
)


def _r(code: str) -> dict:
    assert RSCRIPT is not None
    done = subprocess.run(
        [RSCRIPT, "--vanilla", "-e", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _r_has(package: str) -> bool:
    assert RSCRIPT is not None
    done = subprocess.run([RSCRIPT, "--vanilla", "-e", f"library({package})"],
                          capture_output=True, timeout=60)  # fmt: skip
    return done.returncode == 0


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sequential study (2 readers, 16 cases, acl truth 0/1) with varied grades."""
    folder = tmp_path_factory.mktemp("rstudy")
    db = build_study(folder, n_cases=16)
    read_with_random_grades(db, np.random.default_rng(4))
    return db


def _our_aucs(db: Path) -> dict[str, float]:
    with Store.open(db, clock=FakeClock()) as store:
        answers, protocol, truth = (
            answers_frame(store, unblinded=True),
            store.protocol,
            truth_frame(store),
        )
    reads = reads_from_answers(answers, protocol).reads
    arr = finding_rating_array(reads, truth, "acl", treatments=["conv", "dl"])
    result = or_analysis(arr.truth, arr.ratings, treatments=arr.treatments, readers=arr.readers)
    return {
        f"{reader}|{trt}": float(result.foms[i, j])
        for i, trt in enumerate(result.treatments)
        for j, reader in enumerate(result.readers)
    }


R_AUC = """
auc <- function(truth, rating) {
  pos <- rating[truth == 1]; neg <- rating[truth == 0]
  w <- suppressWarnings(wilcox.test(pos, neg, exact = FALSE)$statistic)
  unname(w) / (length(pos) * length(neg))
}
"""


def test_mrmcaov_export_is_read_by_r_and_gives_our_aucs(study_db: Path, tmp_path: Path):
    out = tmp_path / "mrmcaov.csv"
    with Store.open(study_db, clock=FakeClock()) as store:
        export(store, "mrmcaov", out, finding="acl")
        assert mrmc_frame(store, "acl").shape[0] > 0
    code = (
        R_AUC
        + f"""
d <- read.csv("{out}")
stopifnot(identical(names(d), c("reader", "treatment", "case", "truth", "rating")))
stopifnot(all(d$truth %in% c(0, 1)), is.numeric(d$rating))
res <- list()
for (r in unique(d$reader)) for (t in unique(d$treatment)) {{
  s <- d[d$reader == r & d$treatment == t, ]
  res[[paste(r, t, sep = "|")]] <- auc(s$truth, s$rating)
}}
cat(sprintf('{{%s}}', paste(sprintf('"%s": %.12f', names(res), unlist(res)), collapse = ", ")))
"""
    )
    from_r = _r(code)
    ours = _our_aucs(study_db)
    assert from_r.keys() == ours.keys()
    for key, value in ours.items():
        assert from_r[key] == pytest.approx(value, abs=1e-10)


def test_imrmc_file_follows_the_documented_layout_in_r(study_db: Path, tmp_path: Path):
    out = tmp_path / "acl.imrmc"
    with Store.open(study_db, clock=FakeClock()) as store:
        export(store, "imrmc", out, finding="acl")
        frame = imrmc_frame(store, "acl")
    assert list(frame.columns) == ["readerID", "caseID", "modalityID", "score"]
    truth_rows = frame[frame["readerID"] == -1]
    assert (truth_rows["modalityID"] == 0).all() and set(truth_rows["score"]) <= {0, 1}
    code = (
        R_AUC
        + f"""
lines <- trimws(readLines("{out}"))
field <- function(name) as.numeric(sub(".*:", "", lines[startsWith(lines, paste0(name, ":"))]))
start <- which(lines == "BEGIN DATA:") + 1
rows <- lines[start:length(lines)]
rows <- rows[rows != ""]
parts <- do.call(rbind, strsplit(rows, ",", fixed = TRUE))
stopifnot(ncol(parts) == 4)
d <- data.frame(readerID = parts[, 1], caseID = as.numeric(parts[, 2]),
                modalityID = parts[, 3], score = as.numeric(parts[, 4]))
stopifnot(!any(is.na(d$caseID)), !any(is.na(d$score)))
truth <- d[d$readerID == "-1", ]
reads <- d[d$readerID != "-1", ]
stopifnot(all(truth$score %in% c(0, 1)), all(reads$caseID %in% truth$caseID))
stopifnot(field("N0") == sum(truth$score == 0), field("N1") == sum(truth$score == 1))
stopifnot(field("NR") == length(unique(reads$readerID)))
stopifnot(field("NM") == length(unique(reads$modalityID)))
tv <- setNames(truth$score, truth$caseID)
res <- list()
for (r in unique(reads$readerID)) for (m in unique(reads$modalityID)) {{
  s <- reads[reads$readerID == r & reads$modalityID == m, ]
  res[[paste(r, m, sep = "|")]] <- auc(tv[as.character(s$caseID)], s$score)
}}
cat(sprintf('{{%s}}', paste(sprintf('"%s": %.12f', names(res), unlist(res)), collapse = ", ")))
"""
    )
    from_r = _r(code)
    ours = _our_aucs(study_db)
    assert from_r.keys() == ours.keys()
    for key, value in ours.items():
        assert from_r[key] == pytest.approx(value, abs=1e-10)


def test_proportional_odds_agrees_with_r_ordinal_clm(tmp_path: Path):
    if not _r_has("ordinal"):
        pytest.skip("R package ordinal not installed (Debian: r-cran-ordinal)")
    rng = np.random.default_rng(5)
    rows = []
    for i in range(60):
        quality = rng.normal()
        for j, bias in enumerate((-0.3, 0.0, 0.4)):
            for arm, shift in (("conv", 0.0), ("dl", 0.6)):
                latent = quality + bias + shift + rng.logistic() * 0.6
                rows.append(
                    (f"c{i}", f"r{j}", arm, "quality", int(np.digitize(latent, [-1, 0, 1])) + 1)
                )
    reads = pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])
    reads.to_csv(tmp_path / "reads.csv", index=False)
    ours = proportional_odds(reads, "conv", "dl")
    code = f"""
library(ordinal)
d <- read.csv("{tmp_path / "reads.csv"}")
d$y <- factor(d$value, ordered = TRUE)
d$new <- as.numeric(d$arm == "dl")
d$reader <- factor(d$reader)
fit <- clm(y ~ new + reader, data = d)
cat(sprintf('{{"beta": %.10f}}', coef(fit)[["new"]]))
"""
    assert _r(code)["beta"] == pytest.approx(ours.log_odds_ratio, abs=1e-4)


def test_rank_biserial_agrees_with_r_wilcox_test():
    rng = np.random.default_rng(6)
    diff = rng.integers(-3, 4, 40).astype(float)
    diff = diff[diff != 0]  # without zeros Pratt and Wilcoxon rank alike
    values = ", ".join(f"{v:g}" for v in diff)
    code = f"""
d <- c({values})
v <- suppressWarnings(wilcox.test(d, exact = FALSE)$statistic)
n <- length(d)
cat(sprintf('{{"r": %.12f}}', 4 * unname(v) / (n * (n + 1)) - 1))
"""
    assert _r(code)["r"] == pytest.approx(float(rank_biserial(diff[None, :])[0]), abs=1e-12)
