import { createBrokerApp } from "./broker-app.js";

// `npx cdk synth --no-notices` / `npx cdk deploy` (cdk.json). Optional context:
// `-c alarmEmail=ops@example.com` subscribes an address to the alerts topic.
createBrokerApp().app.synth();
