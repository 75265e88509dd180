(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const criterion = $("filter-criterion"), score = $("filter-score"), status = $("filter-status");
  const session = $("filter-session"), only = $("filter-only"), count = $("filter-count");
  const group = $("filter-group");  // only with `report --by FIELD`
  const judgments = Array.from(document.querySelectorAll(".judgment"));
  const sessions = Array.from(document.querySelectorAll(".session"));
  const marks = Array.from(document.querySelectorAll("mark.evidence"));
  const keyOf = (j) => j.dataset.rubric + ":" + j.dataset.criterion;
  const numeric = (v) => v.trim() !== "" && !Number.isNaN(Number(v));
  const byValue = (a, b) => (numeric(b) - numeric(a)) || (numeric(a) ? Number(a) - Number(b) : a.localeCompare(b));

  function refreshScores() {
    const current = score.value;
    const values = new Set(judgments
      .filter((j) => j.dataset.status === "ok" && (!criterion.value || keyOf(j) === criterion.value))
      .map((j) => j.dataset.score));
    const options = Array.from(values).sort(byValue).map((v) => new Option(v, v));
    score.replaceChildren(new Option("any score", ""), ...options);
    score.value = values.has(current) ? current : "";
  }

  function sessionShown(s) {
    if (session && session.value && s.id !== session.value) return false;  // none on a transcript page
    return !(group && group.value && s.dataset.group !== group.value);
  }

  function matches(j) {
    if (!sessionShown(j.closest(".session"))) return false;
    if (criterion.value && keyOf(j) !== criterion.value) return false;
    if (status.value && j.dataset.status !== status.value) return false;
    if (score.value && (j.dataset.status !== "ok" || j.dataset.score !== score.value)) return false;
    return true;
  }

  function apply() {
    let shown = 0;
    for (const j of judgments) {
      j.hidden = !matches(j);
      if (!j.hidden) shown += 1;
    }
    const filtering = Boolean(criterion.value || status.value || score.value);
    for (const s of sessions) {
      s.hidden = !sessionShown(s);
      const turns = Array.from(s.querySelectorAll(".turn"));
      turns.forEach((turn, i) => {
        const hasJudgments = turn.querySelector(".judgment") !== null;
        const match = hasJudgments && turn.querySelector(".judgment:not([hidden])") !== null;
        turn.classList.toggle("no-match", hasJudgments && !match);
        const next = turns[i + 1];
        const leadsToMatch = !hasJudgments && next && next.querySelector(".judgment:not([hidden])") !== null;
        turn.hidden = only.checked && filtering && !match && !leadsToMatch;
      });
    }
    for (const mark of marks) {
      const refs = mark.dataset.judgments.split(" ").map((id) => document.getElementById(id));
      mark.classList.toggle("off", !refs.some((j) => j && !j.hidden));
    }
    count.value = shown + " of " + judgments.length + " judgments";
  }

  criterion.addEventListener("change", () => { refreshScores(); apply(); });
  for (const control of [score, status, session, only, group]) if (control) control.addEventListener("change", apply);
  $("filter-reset").addEventListener("click", () => {
    criterion.value = status.value = score.value = "";
    if (session) session.value = "";
    if (group) group.value = "";
    only.checked = false;
    refreshScores();
    apply();
  });
  refreshScores();
  apply();
})();
