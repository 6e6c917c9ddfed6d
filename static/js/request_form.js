// Improves the request form; without JavaScript it works the same, with fewer conveniences.
// Adds tag rows without a round trip. Without JavaScript the form still works: it always
// carries one empty row, and a removed row is a ticked "Remove" box.
(function () {
  "use strict";
  // Suggest the chosen target's own Windows AMIs in the AMI field.
  const targetSelect = document.getElementById("id_target");
  const amiInput = document.getElementById("id_ec2_image_id");
  if (targetSelect && amiInput) {
    targetSelect.addEventListener("change", function () {
      const list = document.getElementById("amis-" + targetSelect.value);
      if (list) amiInput.setAttribute("list", list.id);
      else amiInput.removeAttribute("list");
    });
  }
})();

(function () {
  "use strict";
  const rows = document.getElementById("tag-rows");
  const template = document.getElementById("tag-row-template");
  const addButton = document.getElementById("add-tag");
  const total = document.getElementById("id_tags-TOTAL_FORMS");
  const maxForms = document.getElementById("id_tags-MAX_NUM_FORMS");
  if (!rows || !template || !addButton || !total) return;
  addButton.hidden = false;
  const hint = document.getElementById("tags-nojs-hint");
  if (hint) hint.hidden = true;

  addButton.addEventListener("click", function () {
    const index = parseInt(total.value, 10);
    if (maxForms && index >= parseInt(maxForms.value, 10)) return;
    const html = template.innerHTML
      .replace(/__prefix__/g, String(index))
      .replace(/__number__/g, String(index + 1));
    rows.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    const added = rows.lastElementChild.querySelector("input[type=text]");
    if (added) added.focus();
  });
})();
