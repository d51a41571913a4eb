// @ts-check
// What a page can capture, and errors from getUserMedia/getDisplayMedia in words a person can act on.

/** @param {string} host */
const INSECURE_NOTE = (host) =>
  `Camera and microphone need https or localhost: this page is plain http on ${host}, ` +
  "where the browser offers no media devices. Open it over https (the README shows how to serve " +
  "TLS on a LAN) or as http://localhost. You can still join to watch.";

/** {camera, microphone, note}: which devices a join can use, and a note when one is missing. */
export async function mediaAccess(win = window) {
  const devices = win.navigator.mediaDevices;
  if (!win.isSecureContext || !devices?.getUserMedia) {
    return { camera: false, microphone: false, secure: false, note: INSECURE_NOTE(win.location.hostname) };
  }
  let list = [];
  try {
    list = await devices.enumerateDevices();
  } catch {
    // Unknown: let getUserMedia decide and explain.
    return { camera: true, microphone: true, secure: true, note: "" };
  }
  const camera = list.some((d) => d.kind === "videoinput");
  const microphone = list.some((d) => d.kind === "audioinput");
  let note = "";
  if (!camera && !microphone) note = "No camera or microphone found: you can join to watch.";
  else if (!camera) note = "No camera found: join with the microphone only, or to watch.";
  else if (!microphone) note = "No microphone found: you join without sound.";
  return { camera, microphone, secure: true, note };
}

/**
 * A getUserMedia / getDisplayMedia failure as a sentence.
 * @param {any} error what the browser threw
 * @returns {string}
 */
export function describeMediaError(error) {
  switch (error?.name) {
    case "NotFoundError":
    case "DevicesNotFoundError":
      return "No camera or microphone was found.";
    case "NotAllowedError":
    case "PermissionDeniedError":
      return "Access to the camera or microphone was refused (allow it in the site settings).";
    case "NotReadableError":
    case "TrackStartError":
      return "The camera or microphone is in use by another application.";
    case "OverconstrainedError":
      return "The chosen device is not available.";
    case "AbortError":
      return "Capture was cancelled.";
    default:
      if (!window.isSecureContext) return INSECURE_NOTE(window.location.hostname);
      return error?.message || String(error);
  }
}
