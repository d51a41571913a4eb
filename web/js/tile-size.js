// @ts-check
// Adaptive stream: how large a remote video is shown, so the server sends a layer that fits.

/**
 * Watch the rendered size of `video` and whether it is visible at all; call `report` with
 * `{maxWidth, maxHeight}` in device pixels, or `{paused: true}` while it is hidden (no layout
 * box, or scrolled out of view), at most once per `debounceMs`. Returns a function that stops
 * watching.
 * @param {HTMLVideoElement} video
 * @param {(request: import("./room.js").SubscriptionRequest) => void} report
 * @param {number} [debounceMs]
 * @returns {() => void}
 */
export function watchTileSize(video, report, debounceMs = 300) {
  let visible = true;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  const send = () => {
    timer = null;
    const scale = window.devicePixelRatio || 1;
    const width = Math.round(video.clientWidth * scale);
    const height = Math.round(video.clientHeight * scale);
    if (!visible || width === 0 || height === 0 || document.hidden) report({ paused: true });
    else report({ maxWidth: width, maxHeight: height });
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(send, debounceMs);
  };
  const resize = new ResizeObserver(schedule);
  resize.observe(video);
  const seen = new IntersectionObserver((entries) => {
    visible = entries.some((e) => e.isIntersecting);
    schedule();
  });
  seen.observe(video);
  document.addEventListener("visibilitychange", schedule);
  schedule();
  return () => {
    resize.disconnect();
    seen.disconnect();
    document.removeEventListener("visibilitychange", schedule);
    if (timer !== null) clearTimeout(timer);
  };
}
