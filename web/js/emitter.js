// @ts-check
// EventTarget with typed CustomEvents: `on(type, listener)` hands the listener the event's
// detail (and returns a function that removes it); addEventListener works as usual.

/**
 * @template {Record<string, any>} EventMap type -> detail
 */
export class Emitter extends EventTarget {
  /**
   * Listen to one event type; the listener gets the detail. Returns the remover.
   * @template {keyof EventMap & string} K
   * @param {K} type
   * @param {(detail: EventMap[K]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    /** @param {Event} event */
    const handler = (event) => listener(/** @type {CustomEvent} */ (event).detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /**
   * @protected
   * @template {keyof EventMap & string} K
   * @param {K} type
   * @param {EventMap[K]} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
