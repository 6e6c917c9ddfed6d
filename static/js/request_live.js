// While a request is being checked or imported, ask the portal every few seconds whether it
// moved on, and reload the page when it did. Without JavaScript, reloading by hand does the same.
(function () {
  "use strict";
  const script = document.getElementById("live-script");
  if (!script) return;
  const url = script.dataset.statusUrl;
  const seenEvents = parseInt(script.dataset.events, 10);
  const seenState = script.dataset.state;
  const seenNextAttempt = script.dataset.nextAttempt || "";
  let delay = 3000;

  function check() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        const moved = status && (status.state !== seenState || status.events !== seenEvents ||
          (status.next_attempt_at || "") !== seenNextAttempt);
        if (moved) {
          window.location.reload();
          return;
        }
        if (status && status.progress) showProgress(status.progress);
        delay = Math.min(delay * 1.2, 15000);
        window.setTimeout(check, delay);
      })
      .catch(function () { window.setTimeout(check, 15000); });
  }
  // The Image Builder import's stage and percentage move in place; a new stage also joins the
  // stage history. The page shows the percentage as text too, for screen readers.
  function showProgress(progress) {
    const card = document.getElementById("import-progress");
    if (!card) {
      if (progress.stage) window.location.reload();
      return;
    }
    const setText = function (id, text) {
      const element = document.getElementById(id);
      if (element && text !== null && text !== undefined) element.textContent = String(text);
    };
    if (progress.stage !== card.dataset.stage) {
      // A new stage joins the history, in place.
      card.dataset.stage = progress.stage;
      const history = document.querySelector("#stage-history ol");
      if (history) {
        const entry = document.createElement("li");
        entry.textContent = progress.label + ", from " + new Date().toLocaleTimeString() +
          (progress.percent !== null ? " (" + progress.percent + "%)" : "");
        history.appendChild(entry);
        const summary = document.querySelector("#stage-history summary");
        if (summary) summary.textContent = "Stages so far (" + history.children.length + ")";
      }
    }
    setText("progress-stage", progress.label);
    setText("progress-message", progress.message);
    const bar = document.getElementById("progress-bar");
    if (bar && progress.percent !== null) {
      bar.value = progress.percent;
      bar.textContent = progress.percent + "%";
      setText("progress-percent", progress.percent);
      card.dataset.progress = String(progress.percent);
    }
    delay = 3000;
  }
  window.setTimeout(check, delay);
})();
