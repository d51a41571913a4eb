/**
 * @template {Record<string, any>} EventMap type -> detail
 */
export class Emitter<EventMap extends Record<string, any>> extends EventTarget {
    constructor();
    /**
     * Listen to one event type; the listener gets the detail. Returns the remover.
     * @template {keyof EventMap & string} K
     * @param {K} type
     * @param {(detail: EventMap[K]) => void} listener
     * @returns {() => void}
     */
    on<K extends keyof EventMap & string>(type: K, listener: (detail: EventMap[K]) => void): () => void;
    /**
     * @protected
     * @template {keyof EventMap & string} K
     * @param {K} type
     * @param {EventMap[K]} detail
     */
    protected emit<K extends keyof EventMap & string>(type: K, detail: EventMap[K]): void;
}
