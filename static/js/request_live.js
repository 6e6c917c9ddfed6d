// While a request is being checked or imported, ask the portal every few seconds whether it
// moved on, and reload the page when it did. While its rollout runs, reload only the rollout
// card when a step moved (not while someone types a retry comment in it), and the page when the
// rollout ends. Without JavaScript, reloading by hand does the same.
(function () {
  "use strict";
  const script = document.getElementById("live-script");
  if (!script) return;
  const url = script.dataset.statusUrl;
  const seenEvents = parseInt(script.dataset.events, 10);
  const seenState = script.dataset.state;
  const seenNextAttempt = script.dataset.nextAttempt || "";
  const seenRollout = script.dataset.rollout || "";
  // Set while only the rollout moves: its steps' events then reload the card, not the page.
  const rolloutUrl = script.dataset.rolloutUrl || "";
  let delay = 3000;

  function check() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        const rollout = status && status.rollout;
        const moved = status && (status.state !== seenState ||
          (!rolloutUrl && status.events !== seenEvents) ||
          (status.next_attempt_at || "") !== seenNextAttempt ||
          (rollout ? rollout.state : "") !== seenRollout);
        if (moved) {
          window.location.reload();
          return;
        }
        if (status && status.progress) showProgress(status.progress);
        if (rollout && rolloutUrl) showRollout(rollout.signature);
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
  // Someone typing a comment to retry a step, or working in the card: leave it until they are done.
  function busy(card) {
    if (card.contains(document.activeElement)) return true;
    return Array.prototype.some.call(card.querySelectorAll("textarea"), function (field) {
      return field.value.trim() !== "";
    });
  }
  function showRollout(signature) {
    const card = document.getElementById("rollout");
    if (!card || card.dataset.signature === signature || busy(card)) return;
    delay = 3000;
    fetch(rolloutUrl, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        const current = document.getElementById("rollout");
        if (!html || !current || busy(current)) return;
        // A <template> parses the card without running or loading anything.
        const holder = document.createElement("template");
        holder.innerHTML = html;
        const fresh = holder.content.querySelector("#rollout");
        if (!fresh) return;
        current.replaceWith(fresh);
        const summary = document.getElementById("rollout-summary");
        const announcer = document.getElementById("rollout-announcer");
        if (summary && announcer) announcer.textContent = summary.textContent;
      })
      .catch(function () {});
  }
  window.setTimeout(check, delay);
})();
