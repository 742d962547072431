// Upload page: drag and drop, a type and size check before anything is sent, and an upload progress bar.
// Errors are shown next to the field they are about (the server's {"error": {"code", "message", "fields"}} names
// it), or in the general error box when they concern no field of the form. Without JavaScript the form still posts
// normally and the server puts its message in the same places.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("video-input");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const errorBox = document.getElementById("upload-error");
  const progress = document.getElementById("upload-progress");
  const fill = document.getElementById("upload-fill");
  const label = document.getElementById("upload-label");
  const submit = document.getElementById("submit");
  const maxBytes = Number(form.dataset.maxBytes);
  const extensions = form.dataset.extensions.split(",");
  // Photos are offered only when a frame model is active (the attribute is empty otherwise).
  const imageExtensions = (form.dataset.imageExtensions || "").split(",").filter(Boolean);

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  // The message box of a form field (data-error-for="<field name>"), or null when the form has none for it.
  function fieldBox(name) {
    return Array.from(form.querySelectorAll("[data-error-for]")).find((box) => box.dataset.errorFor === name) || null;
  }

  function showFieldError(name, message) {
    const box = fieldBox(name);
    if (!box) return false;
    box.textContent = message;
    box.hidden = !message;
    const control = form.elements.namedItem(name);
    if (control && control.setAttribute) {
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
    return true;
  }

  function clearErrors() {
    showError("");
    form.querySelectorAll("[data-error-for]").forEach((box) => showFieldError(box.dataset.errorFor, ""));
  }

  // A server error: each field's messages next to that field; the general box for the rest.
  function showServerError(error) {
    const fields = error.fields || {};
    const unplaced = Object.keys(fields).filter((name) => !showFieldError(name, [].concat(fields[name]).join(" ")));
    if (!Object.keys(fields).length || unplaced.length) showError(error.message);
  }

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function check(file) {
    if (!file) return imageExtensions.length ? "Choose a video or a photo to upload." : "Choose a video file to upload.";
    const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
    if (!extensions.includes(extension) && !imageExtensions.includes(extension)) {
      const listed = extensions.map((e) => "." + e).join(", ");
      if (!imageExtensions.length) return "'" + file.name + "' is not a video file we accept (" + listed + ").";
      return "'" + file.name + "' is neither a video (" + listed + ") nor a photo (" +
        imageExtensions.map((e) => "." + e).join(", ") + ") we accept.";
    }
    if (file.size === 0) return "'" + file.name + "' is empty.";
    if (file.size > maxBytes) {
      return "'" + file.name + "' is " + megabytes(file.size) + "; the limit is " + megabytes(maxBytes) + ".";
    }
    return "";
  }

  function chose() {
    const file = input.files[0];
    chosen.textContent = file ? file.name + " (" + megabytes(file.size) + ")" : "";
    clearErrors();
    showFieldError("video", file ? check(file) : "");
  }

  input.addEventListener("change", chose);
  const length = form.elements.namedItem("sequence_length");
  if (length) length.addEventListener("change", () => showFieldError("sequence_length", ""));
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((type) =>
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (event) => {
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      chose();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const link = form.elements.namedItem("url");
    const linked = Boolean(link && link.value.trim());
    clearErrors();
    if (linked && input.files[0]) { showFieldError("url", "Send either a file or a link, not both."); return; }
    const problem = linked ? "" : check(input.files[0]);
    if (problem) { showFieldError("video", problem); return; }
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((100 * e.loaded) / e.total);
      fill.style.width = percent + "%";
      label.textContent = linked ? "Sending the link…" : percent < 100 ? "Uploading… " + percent + "%" : "Checking the file…";
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
      if (request.status === 202 && body && body.page_url) {
        label.textContent = "Uploaded. Opening the analysis…";
        window.location.assign(body.page_url);  // body.url is the analysis in the API
        return;
      }
      progress.hidden = true;
      submit.disabled = false;
      if (body && body.error) showServerError(body.error);
      else showError("The upload failed (HTTP " + request.status + "). Try again.");
    });
    request.addEventListener("error", () => {
      progress.hidden = true;
      submit.disabled = false;
      showError("The connection broke during the upload. Check your network and try again.");
    });
    progress.hidden = false;
    fill.style.width = "0%";
    label.textContent = "Uploading…";
    submit.disabled = true;
    request.send(new FormData(form));
  });
})();
